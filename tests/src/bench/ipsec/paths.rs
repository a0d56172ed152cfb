//! The measurements of `lab bench ipsec` path by path: one round of iperf3 through one path
//! (a fresh tunnel each round), the handshake trials with their captures, and the helpers
//! they share (iperf3 server, UDP drop counters, ESP keys). IO.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::capture::{IkeCapture, handshakes_ms};
use super::charon::Charon;
use super::{A_ADDR, A_INNER, Net, Pki, R_A, Rate, S_INNER, Stack, TENANT, TENANT_NET, Tools};
use crate::netns::Netns;
use crate::process::Process;

/// What one run's measurements need: the tools, the namespaces, the charons, the PKI, the
/// scratch folder and the ESP-only keys.
pub(super) struct Ctx<'a> {
    pub(super) tools: &'a Tools,
    pub(super) n: &'a Net,
    pub(super) r: &'a Charon,
    pub(super) s: &'a Charon,
    pub(super) pki: &'a Pki,
    pub(super) dir: &'a Path,
    /// KEYMAT (hex) server -> client and client -> server of the ESP-only runs.
    pub(super) esp_keys: [String; 2],
}

/// 36 random bytes (AES-256 key and salt) in hex.
pub(super) fn esp_key() -> Result<String> {
    use ring::rand::SecureRandom as _;
    let mut k = [0u8; 36];
    ring::rand::SystemRandom::new()
        .fill(&mut k)
        .map_err(|_| anyhow::anyhow!("no random bytes from the system"))?;
    Ok(k.iter().map(|b| format!("{b:02x}")).collect())
}

const ESP_SERVER: &str = "10.88.0.1";
const ESP_CLIENT: &str = "10.88.0.2";
const ESP_SERVER_INNER: &str = "10.20.0.2";

/// `Udp: InErrors` of `/proc/net/snmp` in `ns` (includes RcvbufErrors).
fn udp_in_errors(ns: &Netns) -> Result<u64> {
    let snmp = ns
        .run(|| std::fs::read_to_string("/proc/thread-self/net/snmp"))?
        .context("cannot read /proc/thread-self/net/snmp")?;
    udp_counter(&snmp, "InErrors")
        .with_context(|| format!("no Udp: InErrors in /proc/net/snmp of {}", ns.name()))
}

/// A counter of the `Udp:` header/value line pair of `/proc/net/snmp`.
fn udp_counter(snmp: &str, name: &str) -> Option<u64> {
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (head, values) = (lines.next()?, lines.next()?);
    let i = head.split_whitespace().position(|h| h == name)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

pub(super) fn iperf_server(r: &Netns, dir: &Path, tag: &str) -> Result<Process> {
    let mut c = Command::new("iperf3");
    c.args(["-s", "--forceflush", "-B", TENANT]);
    let p = Process::spawn(
        "iperf3-server",
        &c,
        Some(r.name()),
        Some(&dir.join(format!("iperf3-s-{tag}.log"))),
    )?;
    p.wait_for("Server listening", Duration::from_secs(10))
        .context("iperf3 -s did not start")?;
    Ok(p)
}

impl Ctx<'_> {
    fn node(&self) -> Command {
        let mut c = Command::new(&self.tools.ipsec_node);
        c.args(["up", "--local", A_ADDR, "--peer", R_A, "--cert"])
            .arg(self.pki.path("agent.der"))
            .arg("--key")
            .arg(self.pki.path("agent.pk8"))
            .arg("--ca")
            .arg(self.pki.path("ca.der"))
            .args(["--inner", A_INNER, "--remote-ts", TENANT_NET]);
        c
    }

    /// One round of one initiator: tunnel up, iperf3 upload and download, tunnel down.
    pub(super) fn throughput(&self, stack: Stack, secs: u32, round: u32) -> Result<Vec<Rate>> {
        let (ns, inner, tag, upload_receiver) = match stack {
            Stack::StrongSwan => (&self.n.s, S_INNER, "ss", &self.n.r),
            Stack::Agent => (&self.n.a, A_INNER, "agent", &self.n.r),
            Stack::AgentEsp => (&self.n.esp.client, A_INNER, "esp", &self.n.esp.server),
        };
        let mut esp_pair = Vec::new();
        let node = match stack {
            Stack::StrongSwan => {
                self.s
                    .swanctl(&["--initiate", "--child", "c", "--timeout", "10"])?;
                None
            }
            Stack::AgentEsp => {
                esp_pair = self.esp_pair(round)?;
                None
            }
            Stack::Agent => {
                let mut c = self.node();
                c.args(["--tun", "ipsec-bench"]);
                let log = self.dir.join(format!("ipsec-node-{round}.log"));
                let p = Process::spawn("ipsec-node", &c, Some(ns.name()), Some(&log))?;
                p.wait_for("up handshake_ms", Duration::from_secs(15))
                    .with_context(|| {
                        format!("the agent's tunnel did not come up\n{}", p.dump(20))
                    })?;
                Some(p)
            }
        };
        let mut rates = Vec::new();
        for upload in [true, false] {
            // bounded: a tunnel that dies mid-run would leave iperf3 waiting for ever
            let limit = (secs + 30).to_string();
            let t = secs.to_string();
            let mut args = vec![limit.as_str(), "iperf3", "-c", TENANT, "-B", inner, "-J"];
            args.extend(["-t", &t]);
            if !upload {
                args.push("-R");
            }
            let receiver = if upload { upload_receiver } else { ns };
            let before = udp_in_errors(receiver)?;
            let out = ns.exec("timeout", &args)?;
            let udp_drops = udp_in_errors(receiver)?.saturating_sub(before);
            let dir = if upload { "up" } else { "down" };
            std::fs::write(
                self.dir.join(format!("iperf3-{tag}-{dir}-{round}.json")),
                &out,
            )?;
            let v: serde_json::Value = serde_json::from_str(&out).context("iperf3 -J output")?;
            let bps = v["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .context("no end.sum_received.bits_per_second in iperf3's output")?;
            rates.push(Rate {
                stack,
                round,
                upload,
                mbit_s: bps / 1e6,
                retransmits: v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
                udp_drops,
            });
        }
        match node {
            None if stack == Stack::AgentEsp => {
                for p in esp_pair.drain(..).rev() {
                    p.terminate();
                }
            }
            None => {
                self.s
                    .swanctl(&["--terminate", "--ike", "t", "--timeout", "5"])?;
            }
            Some(p) => {
                p.terminate();
                self.r
                    .swanctl(&["--terminate", "--ike", "agent", "--force"])?;
            }
        }
        Ok(rates)
    }

    /// The two `ipsec-node esp` of the ESP-only runs, ready.
    fn esp_pair(&self, round: u32) -> Result<Vec<Process>> {
        let pair = &self.n.esp;
        let [sc, cs] = &self.esp_keys;
        let tenant_route = TENANT_NET.to_string();
        let inner_route = format!("{A_INNER}/32");
        let sides = [
            (
                &pair.server,
                "server",
                ESP_SERVER,
                ESP_CLIENT,
                ESP_SERVER_INNER,
                &inner_route,
            ),
            (
                &pair.client,
                "client",
                ESP_CLIENT,
                ESP_SERVER,
                A_INNER,
                &tenant_route,
            ),
        ];
        let mut procs = Vec::new();
        for (ns, side, local, peer, inner, route) in sides {
            let (spi_in, spi_out, key_in, key_out) = if side == "server" {
                ("1000b", "1000a", cs, sc)
            } else {
                ("1000a", "1000b", sc, cs)
            };
            let mut c = Command::new(&self.tools.ipsec_node);
            c.args(["esp", "--local", local, "--peer", peer, "--inner", inner])
                .args(["--route", route, "--spi-in", spi_in, "--spi-out", spi_out])
                .args([
                    "--key-in",
                    key_in,
                    "--key-out",
                    key_out,
                    "--tun",
                    "esp-bench",
                ]);
            let log = self.dir.join(format!("ipsec-node-esp-{side}-{round}.log"));
            let p = Process::spawn("ipsec-node-esp", &c, Some(ns.name()), Some(&log))?;
            p.wait_for("ready", Duration::from_secs(10))
                .with_context(|| format!("ipsec-node esp did not start\n{}", p.dump(20)))?;
            procs.push(p);
        }
        Ok(procs)
    }

    pub(super) fn strongswan_handshakes(&self, trials: u32) -> Result<Vec<f64>> {
        let cap = IkeCapture::start(&self.n.s, "is0")?;
        for _ in 0..trials {
            std::thread::sleep(Duration::from_millis(200));
            self.s
                .swanctl(&["--initiate", "--child", "c", "--timeout", "10"])?;
            self.s
                .swanctl(&["--terminate", "--ike", "t", "--timeout", "5"])?;
        }
        let report = cap.finish()?;
        let hs = handshakes_ms(&report.events);
        if hs.len() != trials as usize {
            bail!(
                "strongSwan: {} of {trials} handshakes seen on the wire",
                hs.len()
            );
        }
        Ok(hs)
    }

    /// (on the wire, as the agent measured them).
    pub(super) fn agent_handshakes(&self, trials: u32) -> Result<(Vec<f64>, Vec<f64>)> {
        let cap = IkeCapture::start(&self.n.a, "ia0")?;
        let mut c = self.node();
        c.args(["--handshakes", &trials.to_string()]).args([
            "--pause-ms",
            "200",
            "--start-after-ms",
            "500",
        ]);
        let log = self.dir.join("ipsec-node-handshakes.log");
        let p = Process::spawn("ipsec-node-hs", &c, Some(self.n.a.name()), Some(&log))?;
        let secs = 5 + u64::from(trials);
        let status = p.wait_exit(Duration::from_secs(secs));
        if !status.is_some_and(|s| s.success()) {
            bail!("ipsec-node --handshakes failed\n{}", p.dump(20));
        }
        let own = p
            .lines_from(0)
            .iter()
            .filter_map(|l| {
                l.text
                    .strip_prefix("handshake_ms=")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        let report = cap.finish()?;
        self.r
            .swanctl(&["--terminate", "--ike", "agent", "--force"])?;
        let hs = handshakes_ms(&report.events);
        if hs.len() != trials as usize {
            bail!(
                "agent: {} of {trials} handshakes seen on the wire",
                hs.len()
            );
        }
        Ok((hs, own))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_counters_are_read_by_name_from_the_udp_line_pair() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\n\
                    Udp: 10 0 7 12 5\nUdpLite: InDatagrams InErrors\nUdpLite: 0 99\n";
        assert_eq!(udp_counter(snmp, "InErrors"), Some(7));
        assert_eq!(udp_counter(snmp, "RcvbufErrors"), Some(5));
        assert_eq!(udp_counter(snmp, "Nope"), None);
        assert_eq!(udp_counter("Udp: InErrors\n", "InErrors"), None);
        assert_eq!(udp_counter("Udp: InErrors\nUdp: x\n", "InErrors"), None);
        assert_eq!(udp_counter("", "InErrors"), None);
    }
}

//! The IPsec benchmark (issue 6): the agent's stack (agent-ike + agent-esp driven by
//! agent-ipsec, the `ipsec-node` example in release mode) against a strongSwan responder,
//! next to strongSwan against the same responder, and the WireGuard path of
//! [`super::tunnel`], all in one run.
//!
//! Three namespaces: the responder `R` (one charon, kernel-libipsec, tenant address 10.20.0.1
//! on its loopback) joined by one veth to `S` (a second charon as initiator, inner address
//! 10.30.0.6) and by another to `A` (the agent's stack, inner address 10.30.0.5 on its TUN
//! device). Both initiators negotiate AES-GCM-16-256, PRF-HMAC-SHA2-256, x25519 with
//! certificates (P-256, one test CA) and a child SA with AES-GCM-16-256, ESP in UDP 4500.
//! - Throughput: `iperf3 -c 10.20.0.1 -t SECS` from the initiator's inner address (one TCP
//!   stream), upload and download (`-R`), rounds alternating which initiator goes first; each
//!   round brings a fresh tunnel up and terminates it afterwards. For the data path without
//!   charon's limits, the same through two agent-esp endpoints facing each other (`ipsec-node
//!   esp`, random keys, no IKE) on the namespace pair of [`super::Pair`].
//! - Handshake: IKE_SA_INIT request to the IKE_AUTH response, on the wire (kernel timestamps of
//!   a capture on the initiator's veth, [`capture`]), N handshakes each: `swanctl --initiate`
//!   then `--terminate` on S's charon, `ipsec-node up --handshakes N` in A (a warm process).
//!
//! IO; needs root. `scripts/bench.sh ipsec` installs iperf3 and the WireGuard tools and builds
//! the binaries.

pub mod capture;
pub mod charon;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::tunnel::{self, median};
use super::{ratio, scratch};
use crate::netns::{self, Netns};
use crate::process::Process;
use capture::{IkeCapture, handshakes_ms};
use charon::{CHARON, Charon};

const R_S: &str = "10.86.0.1";
const S_ADDR: &str = "10.86.0.2";
const R_A: &str = "10.86.1.1";
const A_ADDR: &str = "10.86.1.2";
const TENANT: &str = "10.20.0.1";
const TENANT_NET: &str = "10.20.0.0/16";
const S_INNER: &str = "10.30.0.6";
const A_INNER: &str = "10.30.0.5";
const PROPOSAL: &str = "aes256gcm16-prfsha256-x25519";

/// Which initiator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    StrongSwan,
    Agent,
    /// Two agent-esp endpoints facing each other with given keys (no IKE, no charon).
    AgentEsp,
}

impl Stack {
    pub fn name(self) -> &'static str {
        match self {
            Stack::StrongSwan => "strongSwan 5.9 -> strongSwan (kernel-libipsec both)",
            Stack::Agent => "agent stack (ipsec-node) -> strongSwan",
            Stack::AgentEsp => "agent-esp <-> agent-esp (ESP only, no IKE)",
        }
    }
}

/// One iperf3 measurement.
#[derive(Debug, Clone)]
pub struct Rate {
    pub stack: Stack,
    pub round: u32,
    /// Initiator -> responder (upload) or back (`-R`).
    pub upload: bool,
    pub mbit_s: f64,
    pub retransmits: u64,
    /// UDP datagrams the receiving side's kernel dropped (InErrors: receive buffer full), in
    /// the namespace of the ESP receiver (the responder for uploads, the initiator else).
    pub udp_drops: u64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    pub rates: Vec<Rate>,
    /// On-the-wire handshake times, ms.
    pub strongswan_hs: Vec<f64>,
    pub agent_hs: Vec<f64>,
    /// The agent's own measurement (first request sent to IKE_AUTH response accepted), ms.
    pub agent_self_hs: Vec<f64>,
    /// The WireGuard benchmark of the same run.
    pub wireguard: Vec<tunnel::Run>,
    pub secs: u32,
}

/// The binaries the benchmark runs.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ipsec_node: PathBuf,
    pub wireguard: tunnel::Tools,
}

impl Tools {
    /// `target/release/examples/ipsec-node`, charon, swanctl, iperf3 and the tools of
    /// [`tunnel::Tools::locate`].
    pub fn locate() -> Result<Tools> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .join("target");
        let ipsec_node = root.join("release/examples/ipsec-node");
        if !ipsec_node.exists() {
            bail!(
                "{} not found: cargo build --release -p agent-ipsec --example ipsec-node",
                ipsec_node.display()
            );
        }
        for p in [CHARON, "/usr/sbin/swanctl", "/usr/bin/iperf3"] {
            if !Path::new(p).exists() {
                bail!("{p} not found: scripts/bench.sh ipsec installs it");
            }
        }
        Ok(Tools {
            ipsec_node,
            wireguard: tunnel::Tools::locate()?,
        })
    }
}

/// The three namespaces, and the pair for the ESP-only runs; deleted on drop (after the
/// processes, which are dropped first).
struct Net {
    r: Netns,
    s: Netns,
    a: Netns,
    esp: super::Pair,
}

fn net() -> Result<Net> {
    let n = Net {
        r: Netns::create("isr")?,
        s: Netns::create("iss")?,
        a: Netns::create("isa")?,
        esp: super::Pair::new()?,
    };
    netns::veth(&n.r, "ir0", &n.s, "is0")?;
    netns::veth(&n.r, "ir1", &n.a, "ia0")?;
    for (ns, dev, addr) in [
        (&n.r, "ir0", R_S),
        (&n.s, "is0", S_ADDR),
        (&n.r, "ir1", R_A),
        (&n.a, "ia0", A_ADDR),
    ] {
        ns.add_addr(dev, addr.parse()?, 24)?;
        ns.link_up(dev)?;
    }
    for ns in [&n.r, &n.s, &n.a, &n.esp.server, &n.esp.client] {
        ns.set_sysctl("net/ipv6/conf/all/disable_ipv6", "1")?;
    }
    // kernel-libipsec routes with a source address of the local traffic selector
    n.r.add_addr("lo", TENANT.parse()?, 16)?;
    n.s.add_addr("lo", S_INNER.parse()?, 32)?;
    // the ESP-only server: the tenant address on its loopback too (its TUN device has
    // ESP_SERVER_INNER), so iperf3 can bind it before the endpoint's TUN device exists
    n.esp.server.add_addr("lo", TENANT.parse()?, 32)?;
    Ok(n)
}

fn conn(name: &str, local: &str, remote: &str, cert: &str, ts: (&str, &str)) -> String {
    format!(
        "  {name} {{\n    version = 2\n    local_addrs = {local}\n    remote_addrs = {remote}\n    \
         proposals = {PROPOSAL}\n    local {{ auth = pubkey\n      certs = {cert} }}\n    \
         remote {{ auth = pubkey\n      cacerts = ca.pem }}\n    \
         children {{ c {{ local_ts = {}\n      remote_ts = {}\n      \
         esp_proposals = aes256gcm16 }} }}\n  }}\n",
        ts.0, ts.1
    )
}

/// The test PKI of `ipsec-node pki`.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let p = self.dir.join(name);
        std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

/// Runs `rounds` rounds of `secs`-second iperf3 uploads and downloads through both initiators,
/// `trials` handshakes each, then [`tunnel::bench`] with the same `secs` and `rounds`.
pub fn bench(tools: &Tools, secs: u32, rounds: u32, trials: u32) -> Result<Results> {
    let dir = scratch("ipsec")?;
    let pki = Pki {
        dir: dir.join("pki"),
    };
    let out = Command::new(&tools.ipsec_node)
        .arg("pki")
        .arg(&pki.dir)
        .output()
        .context("cannot run ipsec-node pki")?;
    if !out.status.success() {
        bail!("ipsec-node pki: {}", String::from_utf8_lossy(&out.stderr));
    }
    let n = net()?;
    let ca = pki.read("ca.pem")?;
    let responder = format!(
        "connections {{\n{}{}}}\n",
        conn(
            "ss",
            R_S,
            S_ADDR,
            "fw.pem",
            (TENANT_NET, &format!("{S_INNER}/32"))
        ),
        conn(
            "agent",
            R_A,
            A_ADDR,
            "fw.pem",
            (TENANT_NET, &format!("{A_INNER}/32"))
        )
    );
    let (fw, fw_key) = (pki.read("fw.pem")?, pki.read("fw.key")?);
    let r = Charon::start(
        &n.r,
        &dir.join("r"),
        &responder,
        &[
            ("x509ca/ca.pem", &ca),
            ("x509/fw.pem", &fw),
            ("private/fw.key", &fw_key),
        ],
    )
    .context("the responder charon")?;
    let initiator = format!(
        "connections {{\n{}}}\n",
        conn(
            "t",
            S_ADDR,
            R_S,
            "ss.pem",
            (&format!("{S_INNER}/32"), TENANT_NET)
        )
    );
    let (ss, ss_key) = (pki.read("ss.pem")?, pki.read("ss.key")?);
    let s = Charon::start(
        &n.s,
        &dir.join("s"),
        &initiator,
        &[
            ("x509ca/ca.pem", &ca),
            ("x509/ss.pem", &ss),
            ("private/ss.key", &ss_key),
        ],
    )
    .context("the strongSwan initiator")?;
    let ctx = Ctx {
        tools,
        n: &n,
        r: &r,
        s: &s,
        pki: &pki,
        dir: &dir,
        esp_keys: [esp_key()?, esp_key()?],
    };
    let iperf = iperf_server(&n.r, &dir, "r")?;
    let iperf_esp = iperf_server(&n.esp.server, &dir, "esp")?;
    let mut res = Results {
        secs,
        ..Results::default()
    };
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [Stack::StrongSwan, Stack::Agent, Stack::AgentEsp]
        } else {
            [Stack::AgentEsp, Stack::Agent, Stack::StrongSwan]
        };
        for stack in order {
            let rates = ctx
                .throughput(stack, secs, round)
                .with_context(|| format!("{} round {round}", stack.name()))?;
            for r in &rates {
                eprintln!(
                    "  round {round}: {:<52} {} {:>7.1} Mbit/s, {} retransmits, {} UDP receive drops",
                    stack.name(),
                    if r.upload { "upload  " } else { "download" },
                    r.mbit_s,
                    r.retransmits,
                    r.udp_drops
                );
            }
            res.rates.extend(rates);
        }
    }
    drop((iperf, iperf_esp));
    res.strongswan_hs = ctx.strongswan_handshakes(trials)?;
    let (wire, own) = ctx.agent_handshakes(trials)?;
    res.agent_hs = wire;
    res.agent_self_hs = own;
    eprintln!(
        "  handshakes on the wire, ms: strongSwan {:?}; agent {:?}",
        res.strongswan_hs, res.agent_hs
    );
    drop((s, r));
    drop(n);
    eprintln!("  WireGuard (lab bench tunnel's measurement):");
    res.wireguard = tunnel::bench(&tools.wireguard, secs, rounds)?;
    Ok(res)
}

struct Ctx<'a> {
    tools: &'a Tools,
    n: &'a Net,
    r: &'a Charon,
    s: &'a Charon,
    pki: &'a Pki,
    dir: &'a Path,
    /// KEYMAT (hex) server -> client and client -> server of the ESP-only runs.
    esp_keys: [String; 2],
}

/// 36 random bytes (AES-256 key and salt) in hex.
fn esp_key() -> Result<String> {
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

fn iperf_server(r: &Netns, dir: &Path, tag: &str) -> Result<Process> {
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
    fn throughput(&self, stack: Stack, secs: u32, round: u32) -> Result<Vec<Rate>> {
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
            let mut args = vec!["-c", TENANT, "-B", inner, "-J"];
            let t = secs.to_string();
            args.extend(["-t", &t]);
            if !upload {
                args.push("-R");
            }
            let receiver = if upload { upload_receiver } else { ns };
            let before = udp_in_errors(receiver)?;
            let out = ns.exec("iperf3", &args)?;
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

    fn strongswan_handshakes(&self, trials: u32) -> Result<Vec<f64>> {
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
    fn agent_handshakes(&self, trials: u32) -> Result<(Vec<f64>, Vec<f64>)> {
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

fn spread(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let lo = v.iter().copied().fold(f64::MAX, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!(
        "{:.2} ms ({lo:.2}-{hi:.2}, {})",
        median(v.to_vec()),
        v.len()
    )
}

/// The Markdown tables of `lab bench ipsec`, with the ratios against strongSwan.
pub fn report(res: &Results) -> String {
    let mut o = String::new();
    let rates = |stack: Stack, upload: bool| -> Vec<f64> {
        res.rates
            .iter()
            .filter(|r| r.stack == stack && r.upload == upload)
            .map(|r| r.mbit_s)
            .collect()
    };
    let losses = |stack: Stack, upload: bool| -> String {
        let of = |f: fn(&Rate) -> u64| {
            median(
                res.rates
                    .iter()
                    .filter(|r| r.stack == stack && r.upload == upload)
                    .map(|r| f(r) as f64)
                    .collect(),
            )
        };
        format!("{:.0} / {:.0}", of(|r| r.retransmits), of(|r| r.udp_drops))
    };
    let list = |v: &[f64]| {
        v.iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        o,
        "| path (iperf3 TCP, 1 stream, {} s, MTU 1400 / 1420) | upload Mbit/s median (runs) | download Mbit/s median (runs) | TCP retransmits / UDP receive drops, medians, up; down | handshake on the wire, median (min-max, n) |",
        res.secs
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    for stack in [Stack::StrongSwan, Stack::Agent, Stack::AgentEsp] {
        let (up, down) = (rates(stack, true), rates(stack, false));
        let no_hs = Vec::new();
        let hs = match stack {
            Stack::StrongSwan => &res.strongswan_hs,
            Stack::Agent => &res.agent_hs,
            Stack::AgentEsp => &no_hs,
        };
        let _ = writeln!(
            o,
            "| {} | **{:.0}** ({}) | **{:.0}** ({}) | {}; {} | {} |",
            stack.name(),
            median(up.clone()),
            list(&up),
            median(down.clone()),
            list(&down),
            losses(stack, true),
            losses(stack, false),
            spread(hs)
        );
    }
    for imp in [tunnel::Impl::Ours, tunnel::Impl::BoringtunCli] {
        let runs: Vec<&tunnel::Run> = res.wireguard.iter().filter(|r| r.imp == imp).collect();
        let up: Vec<f64> = runs.iter().filter_map(|r| r.mbit_s).collect();
        let hs: Vec<f64> = runs.iter().filter_map(|r| r.handshake_ms).collect();
        let retr = median(
            runs.iter()
                .filter(|r| r.mbit_s.is_some())
                .map(|r| r.retransmits as f64)
                .collect(),
        );
        let _ = writeln!(
            o,
            "| WireGuard: {} | **{:.0}** ({}) | - | {retr:.0} / -; - | {} |",
            imp.name(),
            median(up.clone()),
            list(&up),
            spread(&hs)
        );
    }
    let m = |v: Vec<f64>| median(v);
    let _ = writeln!(
        o,
        "\nagent / strongSwan: upload {}, download {} (goal: at least 1x); handshake {} (goal: at most 1x)",
        ratio(
            m(rates(Stack::Agent, true)),
            m(rates(Stack::StrongSwan, true))
        ),
        ratio(
            m(rates(Stack::Agent, false)),
            m(rates(Stack::StrongSwan, false))
        ),
        ratio(m(res.agent_hs.clone()), m(res.strongswan_hs.clone())),
    );
    let wg = |imp| {
        m(res
            .wireguard
            .iter()
            .filter(|r| r.imp == imp)
            .filter_map(|r| r.mbit_s)
            .collect())
    };
    let _ = writeln!(
        o,
        "agent IPsec upload / wg-tunnel: {}; the agent's own handshake timing (first request sent to IKE_AUTH response accepted): {}",
        ratio(m(rates(Stack::Agent, true)), wg(tunnel::Impl::Ours)),
        spread(&res.agent_self_hs)
    );
    let _ = writeln!(
        o,
        "agent-esp alone (no charon) / strongSwan: upload {}, download {}",
        ratio(
            m(rates(Stack::AgentEsp, true)),
            m(rates(Stack::StrongSwan, true))
        ),
        ratio(
            m(rates(Stack::AgentEsp, false)),
            m(rates(Stack::StrongSwan, false))
        ),
    );
    o
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

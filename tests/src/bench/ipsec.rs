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
mod paths;
mod report;

pub use report::report;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::scratch;
use super::tunnel;
use crate::netns::{self, Netns};
use charon::{CHARON, Charon};
use paths::{Ctx, esp_key, iperf_server};

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

/// An exclusive `flock` on `target/bench/ipsec.lock`, held for the run (released when the
/// file closes on drop).
struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    fn take() -> Result<RunLock> {
        use std::os::fd::AsRawFd as _;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .join("target/bench");
        std::fs::create_dir_all(&root)?;
        let path = root.join("ipsec.lock");
        let f = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        // SAFETY: flock on a descriptor this File owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            bail!(
                "another lab bench ipsec holds {} (runs share target/bench/ipsec): wait for it",
                path.display()
            );
        }
        Ok(RunLock { _file: f })
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
    // one run at a time: a second one would empty the scratch folder (PKI, charon's files)
    // under the first
    let _lock = RunLock::take()?;
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

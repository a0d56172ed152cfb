//! The WireGuard tunnel benchmark: iperf3 TCP throughput (one stream, client -> server) through
//! two wg-tunnel nodes (`wg-node`, the crate's example, built in release mode) and through two
//! boringtun-cli peers (`--threads 1`, configured with `wg set` over their UAPI sockets), in the
//! same namespace pair of [`super::Pair`] (underlay 10.88.0.0/16 on a veth, tunnel 10.89.0.0/24,
//! MTU 1420), alternating the two over a few rounds. The handshake is timed from a capture on
//! the server's veth (kernel receive times): first initiation to the initiator's first data
//! message (its keepalive), with both peers' processes running for a while already (wg-node
//! adds its peer 500 ms after start; boringtun-cli starts on the first packet sent).
//! IO; `scripts/bench.sh tunnel` installs iperf3, wireguard-tools and boringtun-cli.

pub mod capture;

use std::fmt::Write as _;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use wg_tunnel::PrivateKey;

use super::{Pair, SERVER_ADDR, ratio, scratch};
use crate::process::Process;
use capture::Capture;

/// The WireGuard UDP port on both sides.
pub const WG_PORT: u16 = 51820;
const SERVER_TUN: &str = "10.89.0.1";
const CLIENT_TUN: &str = "10.89.0.2";
const MTU: &str = "1420";

/// Which implementation carried the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    Ours,
    BoringtunCli,
}

impl Impl {
    pub fn name(self) -> &'static str {
        match self {
            Impl::Ours => "wg-tunnel (Node, one thread)",
            Impl::BoringtunCli => "boringtun-cli 0.7 (--threads 1)",
        }
    }
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Run {
    pub imp: Impl,
    pub round: u32,
    /// iperf3's receiver-side rate; `None` for a handshake-only trial.
    pub mbit_s: Option<f64>,
    pub retransmits: u64,
    pub handshake_ms: Option<f64>,
}

/// The binaries the benchmark runs.
#[derive(Debug, Clone)]
pub struct Tools {
    pub wg_node: PathBuf,
    pub boringtun: PathBuf,
}

impl Tools {
    /// `target/release/examples/wg-node` and `target/bench-tools/bin/boringtun-cli`.
    pub fn locate() -> Result<Tools> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .join("target");
        let t = Tools {
            wg_node: root.join("release/examples/wg-node"),
            boringtun: root.join("bench-tools/bin/boringtun-cli"),
        };
        if !t.wg_node.exists() {
            bail!(
                "{} not found: cargo build --release -p wg-tunnel --example wg-node",
                t.wg_node.display()
            );
        }
        if !t.boringtun.exists() {
            bail!(
                "{} not found: scripts/bench.sh tunnel installs it",
                t.boringtun.display()
            );
        }
        Ok(t)
    }
}

struct Keys {
    server_file: PathBuf,
    client_file: PathBuf,
    server_pub: String,
    client_pub: String,
}

fn write_key(dir: &Path, name: &str, key: &PrivateKey) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut f, key.to_base64().as_bytes())?;
    Ok(path)
}

/// Handshake-only trials per implementation, after the throughput rounds.
pub const HANDSHAKE_TRIALS: u32 = 8;

/// Runs `rounds` rounds of both implementations, `secs` seconds of iperf3 each, then
/// [`HANDSHAKE_TRIALS`] handshakes of each.
pub fn bench(tools: &Tools, secs: u32, rounds: u32) -> Result<Vec<Run>> {
    let pair = Pair::new()?;
    let dir = scratch("tunnel")?;
    let (server, client) = (PrivateKey::generate_os(), PrivateKey::generate_os());
    let keys = Keys {
        server_file: write_key(&dir, "server.key", &server)?,
        client_file: write_key(&dir, "client.key", &client)?,
        server_pub: server.public_key().to_string(),
        client_pub: client.public_key().to_string(),
    };
    let mut runs = Vec::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [Impl::Ours, Impl::BoringtunCli]
        } else {
            [Impl::BoringtunCli, Impl::Ours]
        };
        for imp in order {
            let run = one(&pair, tools, &keys, &dir, imp, Some(secs), round)
                .with_context(|| format!("{} round {round}", imp.name()))?;
            eprintln!(
                "  round {round}: {:<34} {:>7.1} Mbit/s, {} retransmits, handshake {}",
                imp.name(),
                run.mbit_s.unwrap_or(0.0),
                run.retransmits,
                run.handshake_ms
                    .map_or("-".into(), |h| format!("{h:.2} ms"))
            );
            runs.push(run);
        }
    }
    for trial in 0..HANDSHAKE_TRIALS {
        for imp in [Impl::Ours, Impl::BoringtunCli] {
            let run = one(&pair, tools, &keys, &dir, imp, None, rounds + trial)
                .with_context(|| format!("{} handshake trial {trial}", imp.name()))?;
            runs.push(run);
        }
    }
    Ok(runs)
}

/// Peers of one run; stopped (and boringtun's sockets removed) on drop.
struct Peers {
    procs: Vec<Process>,
    sockets: Vec<PathBuf>,
}

impl Drop for Peers {
    fn drop(&mut self) {
        for p in self.procs.drain(..).rev() {
            p.terminate();
        }
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
    }
}

fn one(
    pair: &Pair,
    tools: &Tools,
    keys: &Keys,
    dir: &Path,
    imp: Impl,
    secs: Option<u32>,
    round: u32,
) -> Result<Run> {
    let cap = Capture::start(&pair.server, "bs0", WG_PORT, b"")?;
    let peers = match imp {
        Impl::Ours => start_ours(pair, tools, keys, dir, round)?,
        Impl::BoringtunCli => start_boringtun(pair, tools, keys, dir, round)?,
    };
    let (mbit_s, retransmits) = match secs {
        Some(secs) => {
            let (rate, re) = iperf(pair, dir, secs, imp, round)?;
            (Some(rate), re)
        }
        None => (None, 0),
    };
    drop(peers);
    let report = cap.finish()?;
    Ok(Run {
        imp,
        round,
        mbit_s,
        retransmits,
        handshake_ms: report.handshake_ms(),
    })
}

fn start_ours(pair: &Pair, tools: &Tools, keys: &Keys, dir: &Path, round: u32) -> Result<Peers> {
    let node = |tun: &str, addr: &str, key: &Path, peer: &str, allowed: &str| {
        let mut c = Command::new(&tools.wg_node);
        c.args([
            "--tun",
            tun,
            "--address",
            &format!("{addr}/24"),
            "--mtu",
            MTU,
        ])
        .args(["--listen", &format!("0.0.0.0:{WG_PORT}"), "--key-file"])
        .arg(key)
        .args(["--peer", peer, "--allowed", &format!("{allowed}/32")]);
        c
    };
    let mut peers = Peers {
        procs: Vec::new(),
        sockets: Vec::new(),
    };
    let s = node(
        "wgs0",
        SERVER_TUN,
        &keys.server_file,
        &keys.client_pub,
        CLIENT_TUN,
    );
    let log = dir.join(format!("ours-server-{round}.log"));
    let p = Process::spawn("wg-node-server", &s, Some(pair.server.name()), Some(&log))?;
    p.wait_for("ready", Duration::from_secs(10))
        .context("the server wg-node did not start")?;
    peers.procs.push(p);
    let mut c = node(
        "wgc0",
        CLIENT_TUN,
        &keys.client_file,
        &keys.server_pub,
        SERVER_TUN,
    );
    c.args(["--endpoint", &format!("{SERVER_ADDR}:{WG_PORT}")])
        .args(["--wait-handshake", "5", "--peers-after-ms", "500"]);
    let log = dir.join(format!("ours-client-{round}.log"));
    let p = Process::spawn("wg-node-client", &c, Some(pair.client.name()), Some(&log))?;
    p.wait_for("handshake_ms", Duration::from_secs(10))
        .context("no handshake between the wg-nodes")?;
    peers.procs.push(p);
    Ok(peers)
}

fn start_boringtun(
    pair: &Pair,
    tools: &Tools,
    keys: &Keys,
    dir: &Path,
    round: u32,
) -> Result<Peers> {
    let id = std::process::id() % 100_000;
    let (s_if, c_if) = (format!("bts{id}"), format!("btc{id}"));
    let mut peers = Peers {
        procs: Vec::new(),
        sockets: vec![
            PathBuf::from(format!("/run/wireguard/{s_if}.sock")),
            PathBuf::from(format!("/run/wireguard/{c_if}.sock")),
        ],
    };
    for (ns, ifname, side) in [
        (&pair.server, &s_if, "server"),
        (&pair.client, &c_if, "client"),
    ] {
        let mut c = Command::new(&tools.boringtun);
        c.args([ifname.as_str(), "--foreground", "--disable-drop-privileges"])
            .args(["--threads", "1"]);
        let log = dir.join(format!("boringtun-{side}-{round}.log"));
        peers.procs.push(Process::spawn(
            &format!("boringtun-{side}"),
            &c,
            Some(ns.name()),
            Some(&log),
        )?);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !peers.sockets.iter().all(|s| s.exists()) {
        if Instant::now() > deadline {
            bail!("boringtun-cli made no UAPI socket in /run/wireguard within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let port = WG_PORT.to_string();
    let key = |p: &Path| p.to_string_lossy().into_owned();
    let (s_key, c_key) = (key(&keys.server_file), key(&keys.client_file));
    let s_allowed = format!("{CLIENT_TUN}/32");
    let c_allowed = format!("{SERVER_TUN}/32");
    let endpoint = format!("{SERVER_ADDR}:{WG_PORT}");
    pair.server.exec(
        "wg",
        &[
            "set",
            &s_if,
            "private-key",
            &s_key,
            "listen-port",
            &port,
            "peer",
            &keys.client_pub,
            "allowed-ips",
            &s_allowed,
        ],
    )?;
    pair.client.exec(
        "wg",
        &[
            "set",
            &c_if,
            "private-key",
            &c_key,
            "listen-port",
            &port,
            "peer",
            &keys.server_pub,
            "endpoint",
            &endpoint,
            "allowed-ips",
            &c_allowed,
        ],
    )?;
    for (ns, ifname, addr) in [
        (&pair.server, &s_if, SERVER_TUN),
        (&pair.client, &c_if, CLIENT_TUN),
    ] {
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", ifname])?;
        ns.ip(&["link", "set", "dev", ifname, "mtu", MTU, "up"])?;
    }
    // boringtun starts a handshake on the first packet: send one through the tunnel
    pair.client.run(|| -> Result<()> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.send_to(b"handshake, please", (SERVER_TUN, 9))?;
        Ok(())
    })??;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = pair
            .client
            .exec("wg", &["show", &c_if, "latest-handshakes"])?;
        let done = out
            .split_whitespace()
            .nth(1)
            .and_then(|t| t.parse::<u64>().ok())
            .is_some_and(|t| t > 0);
        if done {
            return Ok(peers);
        }
        if Instant::now() > deadline {
            bail!("no handshake between the boringtun-cli peers within 10 s: {out}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// iperf3 from the client's tunnel address to the server's: (receiver Mbit/s, retransmits).
fn iperf(pair: &Pair, dir: &Path, secs: u32, imp: Impl, round: u32) -> Result<(f64, u64)> {
    let mut s = Command::new("iperf3");
    s.args(["-s", "-1", "--forceflush", "-B", SERVER_TUN]);
    let tag = if imp == Impl::Ours {
        "ours"
    } else {
        "boringtun"
    };
    let log = dir.join(format!("iperf3-server-{tag}-{round}.log"));
    let server = Process::spawn("iperf3-server", &s, Some(pair.server.name()), Some(&log))?;
    server
        .wait_for("Server listening", Duration::from_secs(10))
        .context("iperf3 -s did not start")?;
    let out = pair
        .client
        .exec("iperf3", &["-c", SERVER_TUN, "-t", &secs.to_string(), "-J"])?;
    std::fs::write(dir.join(format!("iperf3-client-{tag}-{round}.json")), &out)?;
    let v: serde_json::Value = serde_json::from_str(&out).context("iperf3 -J output")?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no end.sum_received.bits_per_second in iperf3's output")?;
    let retransmits = v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    server.terminate();
    Ok((bps / 1e6, retransmits))
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The Markdown table of `lab bench tunnel`.
pub fn report(runs: &[Run], secs: u32) -> String {
    let mut o = String::new();
    let per = |imp: Impl| runs.iter().filter(move |r| r.imp == imp);
    let rated = |imp: Impl| per(imp).filter(|r| r.mbit_s.is_some());
    let rate = |imp| median(rated(imp).filter_map(|r| r.mbit_s).collect());
    let (ours, reference) = (rate(Impl::Ours), rate(Impl::BoringtunCli));
    let _ = writeln!(
        o,
        "| tunnel (iperf3 TCP, 1 stream, {secs} s, MTU 1420) | Mbit/s median | runs | retransmits median | handshake median (min-max, n) |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    for imp in [Impl::Ours, Impl::BoringtunCli] {
        let list: Vec<String> = rated(imp)
            .filter_map(|r| r.mbit_s)
            .map(|m| format!("{m:.0}"))
            .collect();
        let hs: Vec<f64> = per(imp).filter_map(|r| r.handshake_ms).collect();
        let (lo, hi) = hs
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), h| (lo.min(*h), hi.max(*h)));
        let _ = writeln!(
            o,
            "| {} | **{:.0}** | {} | {:.0} | {} |",
            imp.name(),
            rate(imp),
            list.join(", "),
            median(rated(imp).map(|r| r.retransmits as f64).collect()),
            if hs.is_empty() {
                "-".to_string()
            } else {
                format!(
                    "{:.2} ms ({lo:.2}-{hi:.2}, {})",
                    median(hs.clone()),
                    hs.len()
                )
            }
        );
    }
    let _ = writeln!(
        o,
        "\nwg-tunnel / boringtun-cli throughput: {}",
        ratio(ours, reference)
    );
    o
}

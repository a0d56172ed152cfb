//! `wg-node`: one wg-tunnel node as a process, for benchmarks and trying things by hand.
//!
//! ```text
//! wg-node --tun NAME --address IP/LEN [--mtu 1420] [--listen 0.0.0.0:51820] --key-file PATH
//!         [--peer PUBKEY [--endpoint IP:PORT] --allowed IP/LEN... [--keepalive SECS]]...
//!         [--wait-handshake SECS] [--peers-after-ms MS]
//! ```
//! Creates and configures the TUN device, starts the node, prints `ready port=P public_key=K`,
//! with `--wait-handshake` also `handshake_ms=T` (from adding the first peer to its completed
//! handshake; `--peers-after-ms` adds the peers that long after the node started, so the
//! handshake is timed on a warm process), then runs until SIGTERM or SIGINT and prints each peer's
//! counters. The key file holds the private key in base64 (`wg genkey`).

use std::error::Error;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use wg_tunnel::{Node, NodeConfig, PeerConfig, PrivateKey, Tun};

type Res<T> = Result<T, Box<dyn Error>>;

fn cidr(s: &str) -> Res<(Ipv4Addr, u8)> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected IP/LEN"))?;
    Ok((ip.parse()?, len.parse()?))
}

#[derive(Debug, Default)]
struct Args {
    tun: Option<String>,
    address: Option<(Ipv4Addr, u8)>,
    mtu: u16,
    listen: Option<SocketAddr>,
    key_file: Option<String>,
    peers: Vec<PeerConfig>,
    wait: Option<Duration>,
    peers_after: Option<Duration>,
}

fn parse() -> Res<Args> {
    let mut a = Args {
        mtu: 1420,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--tun" => a.tun = Some(value()?),
            "--address" => a.address = Some(cidr(&value()?)?),
            "--mtu" => a.mtu = value()?.parse()?,
            "--listen" => a.listen = Some(value()?.parse()?),
            "--key-file" => a.key_file = Some(value()?),
            "--wait-handshake" => a.wait = Some(Duration::from_secs_f64(value()?.parse()?)),
            "--peers-after-ms" => a.peers_after = Some(Duration::from_millis(value()?.parse()?)),
            "--peer" => a.peers.push(PeerConfig {
                public_key: value()?.parse()?,
                endpoint: None,
                allowed_ips: Vec::new(),
                persistent_keepalive: None,
            }),
            "--endpoint" | "--allowed" | "--keepalive" => {
                let v = value()?;
                let p = a
                    .peers
                    .last_mut()
                    .ok_or_else(|| format!("{flag} before any --peer"))?;
                match flag.as_str() {
                    "--endpoint" => p.endpoint = Some(v.parse()?),
                    "--allowed" => p.allowed_ips.push(cidr(&v)?),
                    _ => p.persistent_keepalive = Some(v.parse()?),
                }
            }
            other => return Err(format!("unknown argument {other:?} (see the file's doc)").into()),
        }
    }
    Ok(a)
}

/// Blocks SIGTERM and SIGINT in this thread (and the threads it starts later) so that
/// [`wait_for_signal`] can take them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset; pthread_sigmask changes only
    // this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` was initialised by block_signals; `sig` is a live out-parameter.
    unsafe { libc::sigwait(set, &mut sig) };
}

fn main() -> Res<()> {
    let signals = block_signals();
    let args = parse()?;
    let tun_name = args.tun.ok_or("--tun is required")?;
    let (addr, len) = args.address.ok_or("--address is required")?;
    let key_file = args.key_file.ok_or("--key-file is required")?;
    let key_text = zeroize::Zeroizing::new(
        std::fs::read_to_string(&key_file).map_err(|e| format!("{key_file}: {e}"))?,
    );
    let private_key = PrivateKey::from_base64(&key_text)?;
    let tun = Tun::create(&tun_name)?;
    tun.set_ipv4(addr, len)?;
    tun.set_mtu(args.mtu)?;
    tun.up()?;
    let first = args.peers.first().map(|p| p.public_key);
    let (now, later) = match args.peers_after {
        Some(_) => (Vec::new(), args.peers),
        None => (args.peers, Vec::new()),
    };
    let mut start = Instant::now();
    let node = Node::spawn(NodeConfig {
        private_key,
        listen: args
            .listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
        tun,
        peers: now,
    })?;
    if let Some(after) = args.peers_after {
        std::thread::sleep(after);
        start = Instant::now();
        for p in later {
            node.add_peer(p)?;
        }
    }
    println!(
        "ready port={} public_key={}",
        node.local_port(),
        node.public_key()
    );
    if let (Some(wait), Some(peer)) = (args.wait, first) {
        node.wait_handshake(&peer, wait)?;
        println!("handshake_ms={:.3}", start.elapsed().as_secs_f64() * 1000.0);
    }
    wait_for_signal(&signals);
    for p in node.peers()? {
        println!(
            "peer {} endpoint={:?} rx={} tx={} dropped={}",
            p.public_key, p.endpoint, p.rx_bytes, p.tx_bytes, p.dropped
        );
    }
    println!("node {:?}", node.stats()?);
    node.shutdown()?;
    Ok(())
}

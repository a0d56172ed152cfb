//! `ipsec-node`: the agent's IPsec stack (agent-ike + agent-esp driven by agent-ipsec) as a
//! process, for `lab bench ipsec` and trying things by hand against a strongSwan responder.
//!
//! ```text
//! ipsec-node pki DIR
//! ipsec-node up --local IP --peer IP --cert DER --key PKCS8-DER --ca DER --inner IP
//!               --remote-ts IP/LEN [--tun NAME] [--mtu 1400] [--handshakes N]
//!               [--pause-ms 200] [--start-after-ms 0]
//! ipsec-node esp --local IP --peer IP --inner IP --route IP/LEN --spi-in HEX --spi-out HEX
//!                --key-in HEX --key-out HEX [--tun NAME] [--mtu 1400]
//! ```
//! `pki` writes a test PKI made with rcgen (the interop tests' `ca.rs`): `ca.pem`/`ca.der` and
//! for each of `fw`, `ss` and `agent` a P-256 certificate (`NAME.pem`, `NAME.der`) and its key
//! (`NAME.key` PEM, `NAME.pk8` PKCS#8 DER), with subjectAltNames `NAME.bench.test`.
//!
//! `up` without `--handshakes` brings the tunnel up (`Tunnel::up`: IKE_SA_INIT, IKE_AUTH, TUN
//! device `--tun` with the inner address and routes), prints `up handshake_ms=T sa_init_ms=A
//! auth_ms=B spi_in=.. spi_out=..`, runs until SIGTERM or SIGINT and prints the ESP endpoint's
//! counters. With `--handshakes N` it runs N handshakes only (IKE_SA_INIT + IKE_AUTH, no TUN
//! device; each IKE SA is dropped without a Delete), `--pause-ms` apart, printing
//! `handshake_ms=...` for each and `done` at the end. `--start-after-ms` waits before the first
//! handshake, so it runs on a warm process. Times are measured by the initiator from its first
//! request to the accepted IKE_AUTH response.
//!
//! `esp` runs agent-esp's endpoint alone, without IKE, as `Tunnel::up` runs it after the
//! handshake: the SA pair from the given SPIs and keys (36 bytes of KEYMAT in hex: the
//! AES-256 key and the 4-byte salt), UDP 4500 on `--local`, a TUN device with the inner
//! address and a route; prints `ready`, runs until SIGTERM or SIGINT and prints the counters.
//! Two of them facing each other measure the agent's ESP data path without a peer's limits.

#[allow(dead_code)]
#[path = "../../ike/tests/common/ca.rs"]
mod ca;

use std::error::Error;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agent_esp::io::{Counters, Endpoint, EndpointConfig, TunDevice};
use agent_esp::{InboundSa, LifetimeLimits, OutboundSa, SaKey};
use agent_ike::{
    DhGroup, LocalCredential, PeerTrust, RetransmitPolicy, SystemEntropy, TrafficSelector,
};
use agent_ipsec::{Handshake, IkeConfig, InnerAddress, SystemClock, Tunnel, TunnelConfig};

type Res<T> = Result<T, Box<dyn Error>>;

#[derive(Debug, Default)]
struct Args {
    local: Option<Ipv4Addr>,
    peer: Option<Ipv4Addr>,
    cert: Option<String>,
    key: Option<String>,
    ca: Option<String>,
    inner: Option<Ipv4Addr>,
    remote_ts: Option<(Ipv4Addr, u8)>,
    tun: String,
    mtu: u16,
    handshakes: Option<u32>,
    pause: Duration,
    start_after: Duration,
    route: Option<(Ipv4Addr, u8)>,
    spi_in: Option<u32>,
    spi_out: Option<u32>,
    key_in: Option<Vec<u8>>,
    key_out: Option<Vec<u8>>,
}

fn hex(s: &str) -> Res<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("{s:?}: odd number of hex digits").into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| format!("{s:?}: not hex").into())
        })
        .collect()
}

fn cidr(s: &str) -> Res<(Ipv4Addr, u8)> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected IP/LEN"))?;
    let len: u8 = len.parse()?;
    if len > 32 {
        return Err(format!("{s:?}: prefix length above 32").into());
    }
    Ok((ip.parse()?, len))
}

fn parse(mut it: impl Iterator<Item = String>) -> Res<Args> {
    let mut a = Args {
        tun: "ipsec-node".into(),
        mtu: 1400,
        pause: Duration::from_millis(200),
        ..Args::default()
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--local" => a.local = Some(value()?.parse()?),
            "--peer" => a.peer = Some(value()?.parse()?),
            "--cert" => a.cert = Some(value()?),
            "--key" => a.key = Some(value()?),
            "--ca" => a.ca = Some(value()?),
            "--inner" => a.inner = Some(value()?.parse()?),
            "--remote-ts" => a.remote_ts = Some(cidr(&value()?)?),
            "--tun" => a.tun = value()?,
            "--mtu" => a.mtu = value()?.parse()?,
            "--handshakes" => a.handshakes = Some(value()?.parse()?),
            "--pause-ms" => a.pause = Duration::from_millis(value()?.parse()?),
            "--start-after-ms" => a.start_after = Duration::from_millis(value()?.parse()?),
            "--route" => a.route = Some(cidr(&value()?)?),
            "--spi-in" => a.spi_in = Some(u32::from_str_radix(&value()?, 16)?),
            "--spi-out" => a.spi_out = Some(u32::from_str_radix(&value()?, 16)?),
            "--key-in" => a.key_in = Some(hex(&value()?)?),
            "--key-out" => a.key_out = Some(hex(&value()?)?),
            other => return Err(format!("unknown argument {other:?} (see the file's doc)").into()),
        }
    }
    Ok(a)
}

fn read(path: &str) -> Res<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("{path}: {e}").into())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Res<()> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()).into())
}

fn pki(dir: &str) -> Res<()> {
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ca = ca::Ca::new("ipsec bench CA");
    write(dir, "ca.pem", ca.cert_pem.as_bytes())?;
    write(dir, "ca.der", &ca.cert_der)?;
    for name in ["fw", "ss", "agent"] {
        let (der, pem, pk8, key_pem) =
            ca.issue(&format!("{name} bench"), &format!("{name}.bench.test"));
        write(dir, &format!("{name}.der"), &der)?;
        write(dir, &format!("{name}.pem"), pem.as_bytes())?;
        write(dir, &format!("{name}.pk8"), &pk8)?;
        write(dir, &format!("{name}.key"), key_pem.as_bytes())?;
    }
    println!("pki written to {}", dir.display());
    Ok(())
}

/// The IKE side of the configuration (built anew for each handshake: it is consumed).
fn ike_config(a: &Args, cert: &[u8], key: &[u8], ca: &[u8]) -> Res<IkeConfig> {
    let (ts, len) = a.remote_ts.ok_or("--remote-ts is required")?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    let first = u32::from(ts) & mask;
    let last = first | !mask;
    Ok(IkeConfig {
        local: a.local.ok_or("--local is required")?,
        peer: a.peer.ok_or("--peer is required")?,
        groups: vec![DhGroup::Curve25519],
        credential: LocalCredential::new(cert, key)?,
        trust: PeerTrust::Ca(ca.to_vec()),
        peer_id: None,
        inner: InnerAddress::Fixed(a.inner.ok_or("--inner is required")?),
        remote_ts: vec![TrafficSelector::v4(
            Ipv4Addr::from(first).octets(),
            Ipv4Addr::from(last).octets(),
        )],
        retransmit: RetransmitPolicy {
            initial: Duration::from_millis(500),
            factor_percent: 200,
            max: Duration::from_secs(2),
            tries: 3,
        },
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_handshake(prefix: &str, h: &Handshake) {
    println!(
        "{prefix}handshake_ms={:.3} sa_init_ms={:.3} auth_ms={:.3}",
        ms(h.total()),
        ms(h.sa_init),
        ms(h.auth)
    );
}

/// Blocks SIGTERM and SIGINT in this thread and the threads it starts later, so that
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

fn up(a: &Args) -> Res<()> {
    let signals = block_signals();
    let cert = read(a.cert.as_deref().ok_or("--cert is required")?)?;
    let key = zeroize::Zeroizing::new(read(a.key.as_deref().ok_or("--key is required")?)?);
    let ca = read(a.ca.as_deref().ok_or("--ca is required")?)?;
    std::thread::sleep(a.start_after);
    let mut rng = SystemEntropy::default();
    if let Some(n) = a.handshakes {
        for i in 0..n {
            if i > 0 {
                std::thread::sleep(a.pause);
            }
            let cfg = ike_config(a, &cert, &key, &ca)?;
            let est = agent_ipsec::establish(cfg, &SystemClock, &mut rng)?;
            print_handshake("", &est.handshake);
        }
        println!("done");
        return Ok(());
    }
    let cfg = TunnelConfig {
        ike: ike_config(a, &cert, &key, &ca)?,
        tun_name: a.tun.clone(),
        mtu: a.mtu,
        esp_limits: LifetimeLimits::default(),
    };
    let tunnel = Tunnel::up(cfg, &SystemClock, &mut rng)?;
    let info = tunnel.info();
    print_handshake("up ", &info.handshake);
    println!(
        "spi_in={:08x} spi_out={:08x} inner={} routes={:?}",
        info.spi_in, info.spi_out, info.inner, info.routes
    );
    wait_for_signal(&signals);
    print_counters(&tunnel.counters());
    drop(tunnel);
    Ok(())
}

fn print_counters(c: &Counters) {
    println!(
        "counters sent={} received={} io_errors={} integrity={} replayed={} malformed={} unclassified={}",
        c.sent.load(Ordering::Relaxed),
        c.received.load(Ordering::Relaxed),
        c.io_errors.load(Ordering::Relaxed),
        c.integrity.load(Ordering::Relaxed),
        c.replayed.load(Ordering::Relaxed),
        c.malformed.load(Ordering::Relaxed),
        c.unclassified.load(Ordering::Relaxed),
    );
}

/// agent-esp's endpoint with a given SA pair, no IKE.
fn esp(a: &Args) -> Res<()> {
    let signals = block_signals();
    let local = a.local.ok_or("--local is required")?;
    let peer = a.peer.ok_or("--peer is required")?;
    let inner = a.inner.ok_or("--inner is required")?;
    let (route, len) = a.route.ok_or("--route is required")?;
    let now = std::time::Instant::now();
    let limits = LifetimeLimits::default();
    let key = |k: &Option<Vec<u8>>, flag: &str| -> Res<SaKey> {
        Ok(SaKey::from_keymat(
            k.as_deref().ok_or(format!("{flag} is required"))?,
        )?)
    };
    let outbound = OutboundSa::new(
        a.spi_out.ok_or("--spi-out is required")?,
        &key(&a.key_out, "--key-out")?,
        limits,
        now,
    )?;
    let inbound = InboundSa::new(
        a.spi_in.ok_or("--spi-in is required")?,
        &key(&a.key_in, "--key-in")?,
        limits,
        now,
    )?;
    let sock = std::net::UdpSocket::bind((local, 4500))?;
    let tun = TunDevice::create(&a.tun)?;
    let ifc = wg_tunnel::ifconfig::Ifconfig::open()?;
    ifc.set_ipv4(&a.tun, inner, wg_tunnel::ifconfig::netmask(32))?;
    ifc.set_mtu(&a.tun, a.mtu)?;
    ifc.set_up(&a.tun)?;
    ifc.add_route(&a.tun, wg_tunnel::Ipv4Net::new(route, len)?, None)?;
    let mut ep = Endpoint::new(
        sock,
        tun,
        EndpointConfig {
            peer: std::net::SocketAddr::from((peer, 4500)),
            outbound,
            inbound,
        },
        None,
    )?;
    let counters = ep.counters();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let thread = std::thread::spawn(move || ep.run(&flag));
    println!("ready");
    wait_for_signal(&signals);
    stop.store(true, Ordering::Relaxed);
    let ended = thread.join().map_err(|_| "the endpoint thread panicked")?;
    print_counters(&counters);
    Ok(ended?)
}

fn main() -> Res<()> {
    let mut it = std::env::args().skip(1);
    match it.next().as_deref() {
        Some("pki") => pki(&it.next().ok_or("pki needs a folder")?),
        Some("up") => up(&parse(it)?),
        Some("esp") => esp(&parse(it)?),
        _ => Err(
            "usage: ipsec-node pki DIR | ipsec-node up ... | ipsec-node esp ... (see the file's doc)"
                .into(),
        ),
    }
}

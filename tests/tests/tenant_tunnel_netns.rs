//! Issue 4's acceptance in network namespaces, without VMs, with the real binaries: the Lease
//! Manager (`lease-manager serve`) in the lab's data-centre namespace, the tenant's
//! `procurement-organizer gateway run` in its own namespace on the same bridge, and the agent
//! (`ramdisk-agent --not-init`) in a "lease server" namespace whose veth carries the server's
//! MAC. The tenant seals an image with a random marker planted in its plaintext and requests a
//! lease; the LM wakes the server (nobody listens: the agent process plays the woken server,
//! started with the kernel line of the per-host iPXE script it fetched from the LM); the agent
//! enrolls, registers with the gateway, builds the WireGuard tunnel and downloads the sealed
//! image through it, throttled so that the gateway can be killed (SIGKILL) mid-transfer and
//! started again on the same state folder; the agent resumes from its last verified chunk and
//! keeps exactly the sealed bytes. Captures on the data-centre segment see WireGuard and never
//! the marker (nor the sealed bytes outside WireGuard); the image store and key service are
//! unreachable from the data-centre side even with a route to the tunnel network; the release
//! wipes the agent, returns the server and removes the gateway's peer.
//!
//! Root, /dev/net/tun, and the binaries built first (`--features lab/e2e`):
//! `cargo build -p lease-manager -p procurement-organizer -p ramdisk-agent &&
//!  cargo test -p lab --features e2e --test tenant_tunnel_netns -- --nocapture`
#![cfg(feature = "e2e")]

use lab::tenant::{helpers, world};

use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use helpers::{field, hex, kernel_cmdline, plaintext, urandom, wait_line};
use lab::Process;
use lab::bench::tunnel::capture::Capture;
use lm_api::{LeaseState, LeaseView};
use world::{
    Bins, GW_DC, GW_TUNNEL, KEY_PORT, LM_ADDR, REGISTER_PORT, SERVER, STORE_PORT, TUNNEL_NET,
    WG_PORT, World, skip_reason,
};

const KERNEL_LEN: usize = 24 << 20;
const INITRD_LEN: usize = 1 << 20;

fn stamp(t0: Instant, what: &str) {
    println!("[{:>6.2}s] {what}", t0.elapsed().as_secs_f64());
}

/// The sealed image as the organizer's store holds it.
struct Sealed {
    id: String,
    chunk_count: u64,
    plaintext_len: u64,
    manifest: Vec<u8>,
    chunks: Vec<u8>,
}

/// Seals a 25 MiB image (every chunk full) with `marker` planted in its kernel and initramfs.
fn seal(w: &World, marker: &str) -> Sealed {
    let m = marker.as_bytes();
    let at = [0, 5 << 20, (12 << 20) + 7, KERNEL_LEN - m.len()];
    let e = w
        .seal(
            &plaintext(KERNEL_LEN, m, &at),
            &plaintext(INITRD_LEN, m, &[INITRD_LEN / 2]),
            "console=ttyS0 panic=-1",
        )
        .expect("images seal");
    let id = e["id"].as_str().expect("image id").to_string();
    let store = w.po.state_dir.join("images");
    let s = Sealed {
        chunk_count: e["chunk_count"].as_u64().expect("chunk_count"),
        plaintext_len: e["plaintext_len"].as_u64().expect("plaintext_len"),
        manifest: std::fs::read(store.join(format!("{id}.manifest"))).unwrap(),
        chunks: std::fs::read(store.join(format!("{id}.chunks"))).unwrap(),
        id,
    };
    assert!(s.chunk_count >= 8, "too small to kill mid-transfer: {e}");
    assert_eq!(
        s.chunks.len() as u64 % s.chunk_count,
        0,
        "uneven chunks: {e}"
    );
    s
}

/// `procurement-organizer request` for one server booting `image`; the lease id.
fn request(w: &World, image: &str) -> String {
    let args = [
        "request",
        "--count",
        "1",
        "--role",
        "build",
        "--image",
        image,
        "--duration",
        "10m",
    ];
    let r = w.po.json(&args).expect("request");
    assert_eq!(r["answer"]["granted"], 1, "{r}");
    let register_url = r["answer"]["lease"]["gateway"]["register_url"].as_str();
    assert!(
        register_url.is_some_and(|u| u.contains(&GW_DC.to_string())),
        "the lease carries the gateway spec: {r}"
    );
    r["answer"]["lease"]["id"]
        .as_str()
        .expect("lease id")
        .to_string()
}

/// `(done, total)` of an `AGENT-PROGRESS transfer image=<image> chunks=<done>/<total>` line.
fn progress(t: &str, image: &str) -> Option<(u64, u64)> {
    if !t.contains("AGENT-PROGRESS transfer") || field(t, "image") != Some(image) {
        return None;
    }
    let (done, total) = field(t, "chunks")?.split_once('/')?;
    Some((done.parse().ok()?, total.parse().ok()?))
}

/// After 3 verified chunks the gateway dies of SIGKILL and starts again on the same state
/// folder; the agent resumes from the first chunk it had not verified, with a Range request.
/// Returns the restarted gateway and the agent's `transfer ok` line.
fn kill_gateway_mid_transfer(
    w: &World,
    t0: Instant,
    agent: &Process,
    gw1: &Process,
    lease: &str,
    s: &Sealed,
) -> (Arc<Process>, String) {
    let image = s.id.as_str();
    let (done, total) = wait_line(agent, 0, Duration::from_secs(60), "3 chunks", |t| {
        progress(t, image).filter(|(d, _)| *d >= 3)
    })
    .expect("transfer progress");
    assert_eq!(
        total, s.chunk_count,
        "the agent counts the manifest's chunks"
    );
    assert!(done < total, "the transfer ended before the kill");
    // SAFETY: kill(2) on the PID of a child this test started and still holds.
    unsafe { libc::kill(gw1.pid() as libc::pid_t, libc::SIGKILL) };
    assert!(
        gw1.wait_exit(Duration::from_secs(10)).is_some(),
        "the gateway did not die of SIGKILL"
    );
    stamp(t0, &format!("gateway killed at chunk {done}/{total}"));
    let gw2 = w.start_gateway("gateway-restarted").expect("gateway again");
    wait_line(&gw2, 0, Duration::from_secs(5), "peer restored", |t| {
        (t.contains("peer restored") && field(t, "lease") == Some(lease)).then_some(())
    })
    .expect("the restarted gateway restored the peer");
    stamp(t0, "gateway restarted");

    // The resume starts where the last progress line before it ended.
    let mut verified = 0;
    let (from, verified) = wait_line(agent, 0, Duration::from_secs(60), "AGENT-RESUME", |t| {
        if let Some((d, _)) = progress(t, image) {
            verified = d;
        }
        let resume = t.contains("AGENT-RESUME transfer") && field(t, "image") == Some(image);
        resume
            .then(|| field(t, "from_chunk")?.parse::<u64>().ok())
            .flatten()
            .map(|f| (f, verified))
    })
    .expect("resume");
    assert!(
        from >= 3 && from == verified && from < total,
        "resumed from chunk {from}, but {verified} of {total} were verified (>= 3 before the kill)"
    );
    let offset = (from * (s.chunks.len() as u64 / total)).to_string();
    wait_line(&gw2, 0, Duration::from_secs(5), "the ranged request", |t| {
        let ranged = t.contains("served") && t.contains("status=206");
        (ranged && field(t, "offset") == Some(offset.as_str())).then_some(())
    })
    .expect("the restarted gateway served the chunks from the resume point on");
    stamp(t0, &format!("resumed from chunk {from}"));

    let ok = wait_line(agent, 0, Duration::from_secs(60), "transfer ok", |t| {
        t.contains("AGENT-PHASE transfer ok").then(|| t.to_string())
    })
    .expect("transfer");
    let number = |k| field(&ok, k).and_then(|v| v.parse::<u64>().ok());
    assert_eq!(field(&ok, "image"), Some(image), "{ok}");
    assert_eq!(number("chunks"), Some(total), "{ok}");
    assert!(number("resumes").is_some_and(|r| r >= 1), "{ok}");
    assert!(
        number("bytes").is_some_and(|b| b >= s.plaintext_len),
        "{ok}"
    );
    (gw2, ok)
}

/// From the data-centre namespace, with a route to the tunnel network via the gateway's
/// data-centre address, TCP to the image store and the key service fails; TCP to the
/// registration service (the control) works.
fn assert_unreachable_from_the_data_centre(w: &World) {
    let dc = w.lab.netns();
    dc.ip(&["route", "add", TUNNEL_NET, "via", &GW_DC.to_string()])
        .expect("route");
    let connect =
        |ip, port| TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(2));
    let (control, direct) = dc
        .run(|| {
            let control = connect(GW_DC.into(), REGISTER_PORT).map(drop);
            let direct = [STORE_PORT, KEY_PORT].map(|p| (p, connect(GW_TUNNEL.into(), p)));
            (control, direct)
        })
        .expect("netns");
    dc.ip(&["route", "del", TUNNEL_NET]).expect("route del");
    assert!(
        control.is_ok(),
        "the control connection failed: {control:?}"
    );
    for (port, r) in direct {
        match r {
            Ok(_) => panic!("{GW_TUNNEL}:{port} accepted a TCP connection from the data centre"),
            Err(e) => println!("{GW_TUNNEL}:{port} from the data centre: {e}"),
        }
    }
}

/// Sends, in the clear across the data-centre segment, `marker` from the LM's namespace to the
/// lease server and to the gateway, and `sealed` to the lease server, into bound sockets (no
/// ICMP echo of the bytes); waits until each arrived.
fn send_controls(w: &World, agent: Ipv4Addr, marker: &[u8], sealed: &[u8]) {
    let port = 40_999;
    let bind = |ns: &lab::netns::Netns, ip: Ipv4Addr| {
        let s = ns.run(|| UdpSocket::bind((ip, port))).expect("netns");
        let s = s.expect("control receiver");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    let (at_agent, at_gw) = (bind(&w.srv_ns, agent), bind(&w.gw_ns, GW_DC));
    w.lab
        .netns()
        .run(|| -> std::io::Result<()> {
            let s = UdpSocket::bind((LM_ADDR, 0))?;
            s.send_to(marker, (agent, port))?;
            s.send_to(marker, (GW_DC, port))?;
            s.send_to(sealed, (agent, port))?;
            Ok(())
        })
        .expect("netns")
        .expect("control datagrams");
    let mut buf = [0u8; 256];
    for (rx, n) in [(&at_agent, 2), (&at_gw, 1)] {
        for _ in 0..n {
            rx.recv(&mut buf).expect("a control datagram arrived");
        }
    }
}

#[test]
fn an_agent_downloads_a_sealed_image_through_the_tunnel_resumes_after_a_gateway_kill_and_wipes() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let t0 = Instant::now();
    let bins = Bins::locate().expect("binaries");
    let w = World::build(bins).expect("namespaces, Lease Manager, tenant");
    stamp(
        t0,
        &format!("lab up, logs in {}", w.lab.log_dir().display()),
    );

    let marker = format!("TENANT-TUNNEL-MARKER-{}", hex(&urandom(8)));
    let s = seal(&w, &marker);
    let image = s.id.as_str();
    stamp(t0, &format!("sealed {image}: {} chunks", s.chunk_count));
    let gw1 = w.start_gateway("gateway").expect("gateway run");
    let lease = request(&w, image);
    stamp(t0, &format!("gateway ready, lease {lease} granted"));

    // The woken server's firmware: the per-host script, and from it the kernel line.
    let script = w
        .fetch_boot_script(Duration::from_secs(20))
        .expect("boot script");
    let cmdline = kernel_cmdline(&script).expect("kernel line");
    assert_eq!(
        field(&cmdline, "lm.lease"),
        Some(lease.as_str()),
        "{cmdline}"
    );

    // Captures on the data-centre segment (both ends of the transfer; the plaintext marker,
    // and sealed bytes outside WireGuard), and the throttle on the lease server's veth
    // towards it, so the transfer takes seconds.
    let captures = [&w.srv_port, &w.gw_port].map(|port| {
        Capture::start(w.lab.netns(), port, WG_PORT, marker.as_bytes()).expect("capture")
    });
    let mid = s.chunks.len() / 2;
    let sealed_probe = s.chunks.get(mid..mid + 48).expect("48 sealed bytes");
    let sealed_capture =
        Capture::start(w.lab.netns(), &w.srv_port, WG_PORT, sealed_probe).expect("capture");
    let tbf = "root tbf rate 60mbit burst 32kbit latency 400ms";
    let mut tc = vec!["qdisc", "add", "dev", &w.srv_port];
    tc.extend(tbf.split(' '));
    w.lab.netns().exec("tc", &tc).expect("tc tbf");

    let image_dir = w.dir.join("agent-images");
    std::fs::create_dir_all(&image_dir).unwrap();
    let disk = w.dir.join("server-disk.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(64 << 20))
        .expect("disk file");
    let agent = w.start_agent(&cmdline, &image_dir, &disk).expect("agent");
    let enrolled = agent
        .wait_for(
            &format!("AGENT-ENROLLED lease={lease}"),
            Duration::from_secs(40),
        )
        .unwrap_or_else(|e| panic!("no enrollment: {e}"));
    stamp(t0, &enrolled.text);
    let tunnel = agent
        .wait_for("AGENT-PHASE tunnel ok", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("no tunnel: {e}"));
    assert!(!tunnel.text.contains("skipped="), "{}", tunnel.text);
    stamp(t0, &tunnel.text);
    let tunnel_address = field(&tunnel.text, "tunnel_address").expect("tunnel_address=");
    wait_line(&gw1, 0, Duration::from_secs(5), "peer registered", |t| {
        (t.contains("peer registered") && field(t, "lease") == Some(lease.as_str())).then_some(())
    })
    .expect("the gateway registered the agent");

    let (gw2, ok) = kill_gateway_mid_transfer(&w, t0, &agent, &gw1, &lease, &s);
    stamp(t0, &ok);
    // The start phase: stored under a start-up key, every gate step passed against the disk
    // (with the LM's word on the lease), no kexec outside PID 1.
    let start = agent
        .wait_for("AGENT-PHASE start ok", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("no start phase: {e}"));
    stamp(t0, &start.text);
    assert!(
        start.text.contains("kexec=skipped-not-init"),
        "{}",
        start.text
    );
    for step in [
        "key-entry",
        "key-unwraps",
        "image-slot",
        "image-verifies",
        "lease-valid",
    ] {
        agent
            .wait_for(&format!("AGENT-GATE {step} ok"), Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("gate step {step}: {e}"));
    }
    let stored = std::fs::read(&disk).expect("disk");
    assert!(
        !stored.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the server's disk holds image plaintext"
    );
    assert_eq!(
        &stored[1 << 20..(1 << 20) + 8],
        b"LSSLOT01",
        "the slot is written"
    );
    let ready = agent
        .wait_for(
            &format!("AGENT-READY server={SERVER}"),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("not ready: {e}"));
    stamp(t0, &ready.text);
    let agent_dc: Ipv4Addr = field(&ready.text, "address")
        .and_then(|a| a.parse().ok())
        .expect("address=");
    // The controls: the captures see the marker and the sealed bytes when they do cross.
    send_controls(&w, agent_dc, marker.as_bytes(), sealed_probe);
    let reports = captures.map(|c| c.finish().expect("capture"));
    let sealed_report = sealed_capture.finish().expect("capture");

    // The agent's disk slot holds exactly the sealed bytes (manifest after the slot header,
    // chunks from the next 4 KiB block), and its RAM copy is gone.
    let slot_data = (1 << 20) + 4096;
    let chunks_at = slot_data + s.manifest.len().div_ceil(4096) * 4096;
    for (what, at, want) in [
        ("manifest", slot_data, &s.manifest),
        ("chunks", chunks_at, &s.chunks),
    ] {
        let got = stored.get(at..at + want.len()).unwrap_or(&[]);
        assert!(
            got == want.as_slice(),
            "the {what} of {image} in the disk slot is not the sealed one"
        );
    }
    let ram: Vec<_> = std::fs::read_dir(&image_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        ram.is_empty(),
        "the RAM copy stayed after the store: {ram:?}"
    );

    // Nothing of the image crossed the data-centre segment outside WireGuard.
    for (port, r) in [&w.srv_port, &w.gw_port].iter().zip(&reports) {
        println!(
            "capture on {port}: {} frames, WireGuard messages by type {:?}, {} WireGuard bytes, {} with the marker",
            r.frames, r.wg_frames, r.wg_bytes, r.marker_frames
        );
        assert_eq!(
            r.marker_frames, 1,
            "the plaintext marker crossed {port} (once is the control)"
        );
        assert!(
            r.wg_bytes >= s.chunks.len() as u64,
            "less WireGuard than the image crossed {port}: {} bytes",
            r.wg_bytes
        );
    }
    assert!(
        reports[0].wg_frames[1] >= 2,
        "no new handshake after the gateway's restart: {:?}",
        reports[0].wg_frames
    );
    assert_eq!(
        sealed_report.marker_frames, 1,
        "sealed image bytes crossed the segment outside WireGuard (once is the control)"
    );
    let key_released = [&gw1, &gw2].iter().any(|g| {
        g.lines_from(0).iter().any(|l| {
            l.text.contains("image key released")
                && field(&l.text, "lease") == Some(lease.as_str())
                && field(&l.text, "source") == Some(tunnel_address)
        })
    });
    assert!(
        key_released,
        "no gateway log releases the key to lease {lease} from {tunnel_address}"
    );

    assert_unreachable_from_the_data_centre(&w);

    let v =
        w.lm.wait_server(SERVER, Duration::from_secs(10), |v| {
            v.state.name() == "running"
        })
        .expect("server running");
    assert_eq!(v.lease.map(|l| l.to_string()), Some(lease.clone()));
    let view: LeaseView =
        w.lm.console_json(&["lease", "show", &lease])
            .expect("lease");
    assert_eq!(view.state, LeaseState::Active, "{view:?}");

    // Release: the agent wipes and exits, the server is idle, the peer removed.
    w.po.json(&["release", &lease]).expect("release");
    agent
        .wait_for(
            &format!("AGENT-WIPED lease={lease}"),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("no wipe: {e}"));
    agent
        .wait_for("AGENT-POWEROFF", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("no power-off: {e}"));
    let status = agent.wait_exit(Duration::from_secs(10)).expect("exit");
    assert_eq!(status.code(), Some(1), "the agent exits with 1 (not PID 1)");
    let left: Vec<_> = std::fs::read_dir(&image_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the wipe left image files: {left:?}");
    // Crypto-shred: the key table is empty and the slot header (the wrapped image key) zeroed.
    let wiped = std::fs::read(&disk).expect("disk");
    assert_eq!(
        &wiped[4096..4108],
        b"LSKTAB1\n\0\0\0\0",
        "the key table still has entries"
    );
    assert!(
        wiped[1 << 20..(1 << 20) + 4096].iter().all(|b| *b == 0),
        "the slot header survived the wipe"
    );
    w.lm.wait_server(SERVER, Duration::from_secs(30), |v| {
        v.state.name() == "idle"
    })
    .expect("server idle");
    wait_line(&gw2, 0, Duration::from_secs(10), "peer removed", |t| {
        (t.contains("peer removed") && field(t, "lease") == Some(lease.as_str())).then_some(())
    })
    .expect("the gateway removed the peer");
    // peers.json is written just after that line.
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let peers = w.po.json(&["gateway", "peers"]).expect("peers");
        if !peers.to_string().contains(&lease) {
            break;
        }
        assert!(
            Instant::now() < end,
            "the peer stays in peers.json: {peers}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stamp(t0, "wiped, server idle, peer removed");
}

//! The tenant side in IPsec mode, in namespaces (no VM; issue 6): the organizer's gateway
//! runs `gateway.tunnel = "ipsec"` (strongSwan's charon with kernel-libipsec, started by the
//! gateway); the tenant requests a lease with `--tunnel ipsec`; the real `ramdisk-agent
//! --not-init` in the lease server's namespace enrolls with the kernel line of the per-host
//! boot script, registers without a WireGuard key, gets its tunnel address, builds the IKEv2
//! tunnel to charon with its LM certificate (the gateway's certificate pinned), downloads the
//! sealed image through ESP and stores it under its start-up key on a disk file. The gateway
//! is configured to rekey child SAs every 2 s and the IKE SA every 3 s
//! (`ipsec_child_rekey_secs`, `ipsec_ike_rekey_secs`) and the link toward the server is
//! throttled to 10 Mbit/s, so the 7 MiB transfer spans several rekeys of both.
//!
//! Checked: every chunk arrives and verifies with no resume (the transfer is intact across the
//! rekeys, which charon logs: new child SAs, `IKE_SA ... rekeyed`, no NO_ADDITIONAL_SAS);
//! captures on both data-centre ports see,
//! between gateway and server, only IKE and ESP (parsed by ipsec-parser) and the
//! registration's TLS, never the plaintext marker, while a control datagram with the marker
//! in the clear is seen; the gateway's charon holds exactly one connection for the lease with
//! the agent's tunnel address as `remote_ts`; release wipes and the gateway drops the
//! connection.
//!
//! Runs as root (skipped otherwise), about 10 s:
//!  cargo test -p lab --features e2e --test tenant_ipsec_netns -- --nocapture`
#![cfg(feature = "e2e")]

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use lab::tenant::helpers::{field, hex, kernel_cmdline, plaintext, urandom, wait_line};
use lab::tenant::ipsec_wire::WireCapture;
use lab::tenant::world;
use world::{Bins, GW_DC, LM_ADDR, REGISTER_PORT, World, skip_reason};

const KERNEL_LEN: usize = 6 << 20;
const INITRD_LEN: usize = 1 << 20;

fn stamp(t0: Instant, what: &str) {
    println!("[{:>6.2}s] {what}", t0.elapsed().as_secs_f64());
}

#[test]
fn an_agent_pulls_a_sealed_image_through_ipsec_to_the_gateways_charon() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    for p in ["/usr/lib/ipsec/charon", "/usr/sbin/swanctl"] {
        if !Path::new(p).exists() {
            eprintln!("skipped: {p} missing: run scripts/setup.sh");
            return;
        }
    }
    let t0 = Instant::now();
    let w = World::build(Bins::locate().expect("binaries")).expect("lab");
    w.use_ipsec().expect("IPsec gateway");
    // The gateway's charon rekeys the child SA every ~2 s and the IKE SA every ~3 s, so both
    // happen during the (throttled) transfer.
    let mut text = std::fs::read_to_string(&w.po.config).unwrap();
    for (from, to) in [
        (
            "# ipsec_child_rekey_secs = 3600",
            "ipsec_child_rekey_secs = 2",
        ),
        ("# ipsec_ike_rekey_secs = 14400", "ipsec_ike_rekey_secs = 3"),
    ] {
        assert!(text.contains(from), "organizer.toml lost {from:?}");
        text = text.replace(from, to);
    }
    std::fs::write(&w.po.config, text).unwrap();
    stamp(
        t0,
        &format!("lab up, logs in {}", w.lab.log_dir().display()),
    );

    let marker = format!("TENANT-IPSEC-MARKER-{}", hex(&urandom(8)));
    let m = marker.as_bytes();
    let sealed = w
        .seal(
            &plaintext(KERNEL_LEN, m, &[0, 3 << 20, KERNEL_LEN - m.len()]),
            &plaintext(INITRD_LEN, m, &[INITRD_LEN / 2]),
            "console=ttyS0 panic=-1",
        )
        .expect("seal");
    let image = sealed["id"].as_str().expect("id").to_string();
    let gw = w.start_gateway("gateway").expect("gateway run (IPsec)");
    // 10 Mbit/s toward the lease server: the image takes about 6 s.
    let mut tc = vec!["qdisc", "add", "dev", w.srv_port.as_str()];
    tc.extend("root tbf rate 10mbit burst 32kbit latency 400ms".split(' '));
    w.lab.netns().exec("tc", &tc).expect("tc tbf");
    let captures = [&w.srv_port, &w.gw_port].map(|port| {
        WireCapture::start(
            w.lab.netns(),
            port,
            GW_DC,
            LM_ADDR,
            REGISTER_PORT,
            vec![m.to_vec()],
        )
        .expect("capture")
    });
    let r =
        w.po.json(&[
            "request",
            "--count",
            "1",
            "--role",
            "build",
            "--image",
            &image,
            "--tunnel",
            "ipsec",
            "--duration",
            "10m",
        ])
        .expect("request");
    assert_eq!(r["answer"]["granted"], 1, "{r}");
    assert_eq!(r["answer"]["lease"]["tunnel"], "ipsec", "{r}");
    assert!(
        r["answer"]["lease"]["gateway"]["wg_public_key"].is_null(),
        "an IPsec gateway names no WireGuard key: {r}"
    );
    let lease = r["answer"]["lease"]["id"].as_str().expect("id").to_string();
    stamp(t0, &format!("lease {lease} granted with tunnel ipsec"));

    let script = w
        .fetch_boot_script(Duration::from_secs(20))
        .expect("boot script");
    let cmdline = kernel_cmdline(&script).expect("kernel line");
    let image_dir = w.dir.join("agent-image");
    std::fs::create_dir_all(&image_dir).unwrap();
    let disk = w.dir.join("disk.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(64 << 20))
        .unwrap();
    let agent = w.start_agent(&cmdline, &image_dir, &disk).expect("agent");
    let wait = |what: &str, secs| {
        wait_line(&agent, 0, Duration::from_secs(secs), what, |t| {
            t.contains(what).then(|| t.to_string())
        })
        .unwrap_or_else(|e| panic!("{what}: {e}\n{}", w.lab.dump(80)))
    };
    let tunnel = wait("AGENT-PHASE tunnel ok", 60);
    stamp(t0, tunnel.trim());
    assert!(tunnel.contains("tunnel=ipsec"), "{tunnel}");
    let transfer = wait("AGENT-PHASE transfer ok", 90);
    stamp(t0, transfer.trim());
    let start = wait("AGENT-PHASE start ok", 30);
    stamp(t0, start.trim());
    // Let the last ESP of the start report's heartbeat cross, then stop the captures.
    std::thread::sleep(Duration::from_millis(300));
    // The control: the marker in the clear from the LM to a socket bound at the gateway
    // (bound, so no ICMP error echoes it a second time).
    let rx = w
        .gw_ns
        .run(|| UdpSocket::bind((GW_DC, 40_999)))
        .expect("netns")
        .expect("control receiver");
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    w.lab
        .netns()
        .run(|| -> std::io::Result<()> {
            let s = UdpSocket::bind((LM_ADDR, 0))?;
            s.send_to(m, (GW_DC, 40_999))?;
            Ok(())
        })
        .expect("netns")
        .expect("control datagram");
    rx.recv(&mut [0u8; 256])
        .expect("the control datagram arrived");
    let reports = captures.map(|c| c.finish().expect("capture"));

    // The image: every chunk through the tunnel, and the gate verified each against the
    // signed manifest on the disk (the RAM copy is gone once stored).
    let store = w.po.state_dir.join("images");
    let sealed_chunks = std::fs::read(store.join(format!("{image}.chunks"))).unwrap();
    assert_eq!(
        field(&transfer, "chunks").and_then(|c| c.parse::<u64>().ok()),
        sealed["chunk_count"].as_u64(),
        "{transfer}"
    );
    wait("AGENT-GATE image-verifies ok", 1);
    let spi = |k| {
        field(&tunnel, k)
            .and_then(|v| u32::from_str_radix(v, 16).ok())
            .unwrap_or_else(|| panic!("no {k} in {tunnel}"))
    };
    let (spi_in, spi_out) = (spi("spi_in"), spi("spi_out"));
    for (port, r) in [&w.srv_port, &w.gw_port].iter().zip(&reports) {
        println!(
            "capture on {port}: {} frames, IKE {:?}, ESP {:?} ({} bytes), {} registration, {} other, markers {:?}",
            r.frames, r.ike, r.esp, r.esp_bytes, r.registration, r.other, r.marker_frames
        );
        assert_eq!(r.unexpected_count, 0, "{port}: {:?}", r.unexpected);
        assert!(
            r.ike.contains_key(&34) && r.ike.contains_key(&35) && r.ike.contains_key(&36),
            "{port}: IKE_SA_INIT, IKE_AUTH and CREATE_CHILD_SA: {:?}",
            r.ike
        );
        let packets: u64 = r.esp.values().sum();
        assert!(
            packets as usize >= sealed_chunks.len() / 1400,
            "{port}: {packets} ESP packets for {} bytes",
            sealed_chunks.len()
        );
        assert!(
            r.esp.contains_key(&spi_in) && r.esp.contains_key(&spi_out) && r.esp.len() >= 4,
            "{port}: ESP on the first SAs (in {spi_in:08x}, out {spi_out:08x}) and on rekeyed ones: {:?}",
            r.esp
        );
    }
    assert_eq!(
        reports[0].marker_frames,
        vec![0],
        "plaintext at the server's port"
    );
    assert_eq!(
        reports[1].marker_frames,
        vec![1],
        "the gateway's port: no plaintext from the lease, and the control seen once"
    );

    // charon rekeyed both SAs during the transfer, which still verified chunk by chunk.
    let log = std::fs::read_to_string(w.po.state_dir.join("gateway/ipsec/charon.log"))
        .expect("charon.log");
    for l in log
        .lines()
        .filter(|l| l.contains("rekey") || l.contains("CHILD_SA") || l.contains("IKE_SA"))
    {
        println!("charon: {l}");
    }
    let children = log
        .lines()
        .filter(|l| l.contains("CHILD_SA") && l.contains("established with SPIs"))
        .count();
    assert!(children >= 2, "no child SA rekey in charon's log");
    assert!(
        log.lines()
            .any(|l| l.contains("IKE_SA") && l.contains("rekeyed between")),
        "no IKE SA rekey in charon's log"
    );
    let resumes = field(&transfer, "resumes");
    assert_eq!(
        resumes,
        Some("0"),
        "the transfer broke across a rekey: {transfer}"
    );
    assert!(
        !log.contains("giving up") && !log.contains("NO_ADD_SAS"),
        "charon gave up on an exchange, or a child SA was refused"
    );

    // charon: one connection for the lease, with exactly the agent's address.
    let address = field(&tunnel, "tunnel_address")
        .expect("tunnel_address")
        .to_string();
    let conf = std::fs::read_to_string(w.po.state_dir.join("gateway/ipsec/swanctl.conf"))
        .expect("swanctl.conf");
    assert!(
        conf.contains(&format!("remote_ts = {address}/32")),
        "the registered agent's connection admits only its address:\n{conf}"
    );

    // Release: the agent wipes; the gateway drops the connection.
    w.po.json(&["release", &lease]).expect("release");
    let wiped = wait("AGENT-WIPED", 60);
    stamp(t0, wiped.trim());
    gw.wait_for("IPsec connection dropped", Duration::from_secs(20))
        .expect("the gateway dropped the IPsec connection");
    stamp(t0, "released, wiped, connection dropped");
}

//! End-to-end in QEMU, the whole lease in IPsec mode (issue 6): the tenant's gateway runs
//! IPsec (`gateway.tunnel = "ipsec"`: charon with kernel-libipsec, one connection per
//! registered agent with exactly its tunnel address); the tenant asks for a lease with
//! `--tunnel ipsec`; the LM wakes the VM, it PXE-boots the agent, which enrolls (the
//! enrollment answer says ipsec), registers without a WireGuard key, builds an IKEv2 tunnel
//! with its LM certificate to the gateway's IKE responder (pinned certificate), pulls the
//! sealed image through ESP, stores it under its start-up key, passes the gate and kexecs into
//! the tenant OS. Then the tenant releases; the server is power-cycled and wiped; idle.
//!
//! A capture on the gateway's port of the data-centre bridge runs from before the request to
//! the tenant OS: every frame between the gateway and the lease server parses with
//! ipsec-parser as IKE (UDP 500, or 4500 behind the non-ESP marker) or ESP (UDP 4500), or is
//! the registration service's TLS; none holds a byte string of the image's plaintext (a marker
//! on the sealed kernel command line, slices of the kernel and the initramfs). A control
//! marker sent in the clear across the same port is seen.
//!
//! Needs root, QEMU, strongSwan (scripts/setup.sh), `scripts/lab-prepare.sh` and the host
//! binaries; enabled with `--features lab/e2e`.
#![cfg(feature = "e2e")]

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use lab::tenant::ipsec_wire::WireCapture;
use lab::tenant::{helpers, world};
use lab::{Artifacts, MacAddr, VmSpec};
use lm_api::{LeaseState, LeaseView};
use world::{Bins, GW_DC, LM_ADDR, REGISTER_PORT, VmServer, World, skip_reason};

const VM: &str = "tvm1";
const VM_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x77, 0x06, 0x01]);
/// Planted on the sealed image's kernel command line (inside the encrypted payload).
const CMDLINE_MARKER: &str = "lab.wire_marker=IPSEC-PLAINTEXT-MARKER-5e1d9a";
/// Sent in the clear across the gateway's port: the capture must see it.
const CONTROL_MARKER: &[u8] = b"CLEAR-CONTROL-MARKER-IPSEC-LEASE-77c2";

/// 64 bytes from the middle of `path` (a window of the image's plaintext).
fn slice_of(path: &Path) -> Vec<u8> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(b.len() > 4096, "{} is too small", path.display());
    let mid = b.len() / 2;
    b[mid..mid + 64].to_vec()
}

fn skip_ipsec() -> Option<String> {
    if let Some(why) = skip_reason() {
        return Some(why.into());
    }
    for p in ["/usr/lib/ipsec/charon", "/usr/sbin/swanctl"] {
        if !Path::new(p).exists() {
            return Some(format!("{p} missing: run scripts/setup.sh"));
        }
    }
    None
}

#[test]
fn a_whole_lease_over_ipsec_with_only_ike_and_esp_on_the_wire() {
    if let Some(why) = skip_ipsec() {
        eprintln!("skipped: {why}");
        return;
    }
    let t0 = Instant::now();
    let stamp = |what: &str| println!("[{:>7.2}s] {what}", t0.elapsed().as_secs_f64());
    let art = Artifacts::locate().expect("artifacts (scripts/lab-prepare.sh)");
    let art_dir = art.dir.clone();
    let bins = Bins::locate().expect("binaries");
    let disk = helpers::TempDisk::create("e2e-ipsec-lease", 256 << 20).expect("disk file");
    let mut spec = VmSpec::new(VM, VM_MAC);
    spec.disks = vec![disk.0.clone()];
    let (w, vm) = World::build_with(bins, Some(VmServer { art, spec })).expect("world");
    let vm = vm.expect("the VM");
    w.use_ipsec().expect("IPsec gateway config");
    stamp(&format!("lab up, logs in {}", w.lab.log_dir().display()));

    let kernel = art_dir.join("boot/vmlinuz");
    let initrd = art_dir.join("boot/tenant-initrd.cpio.gz");
    assert!(
        initrd.exists(),
        "{} missing: run scripts/lab-prepare.sh",
        initrd.display()
    );
    let sealed =
        w.po.json(&[
            "images",
            "seal",
            "--kernel",
            &kernel.display().to_string(),
            "--initramfs",
            &initrd.display().to_string(),
            "--cmdline",
            &format!("console=ttyS0 panic=-1 {CMDLINE_MARKER}"),
        ])
        .expect("images seal");
    let image = sealed["id"].as_str().expect("image id").to_string();
    let markers = vec![
        CMDLINE_MARKER.as_bytes().to_vec(),
        slice_of(&kernel),
        slice_of(&initrd),
        CONTROL_MARKER.to_vec(),
    ];
    stamp(&format!("sealed the tenant test OS as image {image}"));

    let gw = w
        .start_gateway("gateway")
        .expect("gateway run (IPsec mode)");
    let capture = WireCapture::start(
        w.lab.netns(),
        &w.gw_port,
        GW_DC,
        LM_ADDR,
        REGISTER_PORT,
        markers,
    )
    .expect("capture on the gateway's port");
    // The control: the marker in the clear from the gateway to the LM crosses the same port.
    w.gw_ns
        .run(|| {
            let s = UdpSocket::bind((GW_DC, 0))?;
            s.send_to(CONTROL_MARKER, (LM_ADDR, 9))
        })
        .expect("netns")
        .expect("control datagram");

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
            "20m",
        ])
        .expect("request");
    assert_eq!(r["answer"]["granted"], 1, "{r}");
    let lease = r["answer"]["lease"]["id"]
        .as_str()
        .expect("lease id")
        .to_string();
    stamp(&format!(
        "lease {lease} requested with tunnel ipsec and granted"
    ));

    let mut lines = Vec::new();
    for marker in [
        "AGENT-PHASE enroll ok",
        "AGENT-PHASE tunnel ok",
        "AGENT-PHASE transfer ok",
        "AGENT-PHASE start ok",
        "TENANT-OS-UP",
    ] {
        let l = vm
            .wait_for(marker, Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("{marker}: {e}\n{}", w.lab.dump(120)));
        let line = vm
            .complete_line(l.seq, marker, Duration::from_secs(10))
            .expect("the marker's line");
        stamp(line.trim());
        lines.push(line);
    }
    let report = capture.finish().expect("capture");
    stamp(&format!(
        "capture: {} frames, IKE by exchange {:?}, ESP by SPI {:?} ({} bytes), {} registration, {} other, {} unexpected",
        report.frames,
        report.ike,
        report.esp,
        report.esp_bytes,
        report.registration,
        report.other,
        report.unexpected_count
    ));

    // The agent: enrolled for ipsec, an IKE tunnel with SPIs, the image through it.
    assert!(lines[0].contains("tunnel=ipsec"), "{}", lines[0]);
    let tunnel_line = &lines[1];
    assert!(tunnel_line.contains("tunnel=ipsec"), "{tunnel_line}");
    let spi_of = |key: &str| {
        helpers::field(tunnel_line, key)
            .and_then(|v| u32::from_str_radix(v, 16).ok())
            .unwrap_or_else(|| panic!("no {key} in {tunnel_line}"))
    };
    let (spi_in, spi_out) = (spi_of("spi_in"), spi_of("spi_out"));
    let bytes: u64 = helpers::field(&lines[2], "bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no bytes= in {}", lines[2]));
    assert!(lines[4].contains(&lease), "{}", lines[4]);

    // The wire: only IKE and ESP (and the registration's TLS) between gateway and server.
    assert_eq!(
        report.unexpected_count, 0,
        "frames between the gateway and the server that are neither IKE nor ESP: {:?}",
        report.unexpected
    );
    assert!(
        report.ike.get(&34).is_some_and(|n| *n >= 2),
        "IKE_SA_INIT: {:?}",
        report.ike
    );
    assert!(
        report.ike.get(&35).is_some_and(|n| *n >= 2),
        "IKE_AUTH: {:?}",
        report.ike
    );
    assert!(report.registration > 0, "the registration crossed the port");
    let esp_out = report.esp.get(&spi_out).copied().unwrap_or(0);
    let esp_in = report.esp.get(&spi_in).copied().unwrap_or(0);
    assert!(
        esp_in > 0 && esp_out > 0,
        "ESP with the agent's SPIs both ways: {:?} (in {spi_in:08x}, out {spi_out:08x})",
        report.esp
    );
    // The image crossed as ESP toward the agent (at most ~1400 inner bytes per packet).
    assert!(
        esp_in >= bytes / 1400,
        "{esp_in} ESP packets to the agent for {bytes} image bytes"
    );
    assert!(
        report.esp_bytes >= bytes,
        "{} ESP bytes for {bytes}",
        report.esp_bytes
    );
    assert_eq!(
        &report.marker_frames[..3],
        &[0, 0, 0],
        "image plaintext on the wire (cmdline marker, kernel slice, initramfs slice)"
    );
    assert!(
        report.marker_frames[3] >= 1,
        "the control marker sent in the clear was not seen: the capture is blind"
    );

    // The LM and the gateway: the lease is IPsec, the gateway loaded its connection.
    let view: LeaseView =
        w.lm.console_json(&["lease", "show", &lease])
            .expect("lease");
    assert_eq!(view.tunnel, lm_api::Tunnel::Ipsec, "{view:?}");
    assert_eq!(view.servers[0].state, "running", "{view:?}");
    gw.wait_for("peer registered", Duration::from_secs(1))
        .expect("gateway registered the IPsec peer");

    // Release: power cycle, wipe, idle; the gateway drops the connection.
    let before = vm.boots();
    w.po.json(&["release", &lease]).expect("release");
    stamp("released: the LM power-cycles the server into the agent, which wipes");
    vm.wait_boot(before + 1, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("no power cycle: {e}\n{}", w.lab.dump(40)));
    vm.wait_marker(before + 1, "AGENT-WIPED", Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("wipe boot: {e}\n{}", w.lab.dump(80)));
    w.lm.wait_server(VM, Duration::from_secs(30), |v| v.state.name() == "idle")
        .expect("server idle after the wipe");
    let view: LeaseView =
        w.lm.console_json(&["lease", "show", &lease])
            .expect("lease");
    assert!(view.state.is_final(), "{view:?}");
    assert_ne!(view.state, LeaseState::Failed, "{view:?}");
    gw.wait_for("IPsec connection dropped", Duration::from_secs(20))
        .expect("the gateway dropped the lease's IPsec connection");
    stamp("server idle, lease ended, IPsec connection dropped");
}

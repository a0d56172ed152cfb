//! End-to-end in QEMU, the whole lease (issue 5): the tenant seals the lab's test OS (the
//! pinned Debian kernel and the tenant-init initramfs) with the organizer and runs its gateway;
//! asks for a lease naming the image; the LM wakes the VM over WoL, it PXE-boots the agent,
//! which enrolls, builds the WireGuard tunnel to the gateway, pulls the sealed image through
//! it, stores it on the VM's virtio disk under a host-bound start-up key, passes the start
//! gate against the disk, and kexecs into the tenant kernel, whose init prints
//! `TENANT-OS-UP lease=<lease>`. Prints the phase timeline with durations. Then the server is
//! power-cycled within the lease: it enrolls again, starts from the local encrypted copy (no
//! tunnel, no second download) after the gate passes. Then the tenant releases; the server,
//! running its tenant OS, is power-cycled into the agent (the lab standing in for a BMC), which
//! destroys every start-up key on the disk and confirms the wipe: the server is idle, the
//! lease ended, and the disk holds no key that could start the image again.
//!
//! Needs root, QEMU, `scripts/lab-prepare.sh` (boot files, tenant test OS) and the host
//! binaries; enabled with `--features lab/e2e`.
#![cfg(feature = "e2e")]

use lab::tenant::{helpers, world};

use std::path::Path;
use std::time::{Duration, Instant};

use helpers::field;
use lab::{Artifacts, MacAddr, VmHandle, VmSpec};
use lm_api::{LeaseState, LeaseView};
use world::{Bins, VmServer, World, skip_reason};

const VM: &str = "tvm1";
const VM_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x77, 0x06, 0x01]);

/// The marker lines of the lease, in order, with what each one ends.
const PHASES: [(&str, &str); 7] = [
    ("wake -> PXE -> agent up", "AGENT-PHASE init ok"),
    ("DHCP, facts, hello", "AGENT-PHASE hello ok"),
    ("enroll", "AGENT-ENROLLED"),
    ("WireGuard tunnel", "AGENT-PHASE tunnel ok"),
    ("sealed image transfer", "AGENT-PHASE transfer ok"),
    ("store under start-up key + gate", "AGENT-PHASE start ok"),
    ("kexec -> tenant OS", "TENANT-OS-UP"),
];

fn seal_test_os(w: &World, art: &Path) -> String {
    let kernel = art.join("boot/vmlinuz");
    let initrd = art.join("boot/tenant-initrd.cpio.gz");
    assert!(
        initrd.exists(),
        "{} is missing: run scripts/lab-prepare.sh",
        initrd.display()
    );
    let e =
        w.po.json(&[
            "images",
            "seal",
            "--kernel",
            &kernel.display().to_string(),
            "--initramfs",
            &initrd.display().to_string(),
            "--cmdline",
            "console=ttyS0 panic=-1",
        ])
        .expect("images seal");
    e["id"].as_str().expect("image id").to_string()
}

fn complete_line(vm: &VmHandle, seq: u64, text: &str) -> String {
    vm.complete_line(seq, text, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_whole_lease_from_request_to_the_tenant_os() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let t0 = Instant::now();
    let stamp = |what: &str| println!("[{:>7.2}s] {what}", t0.elapsed().as_secs_f64());
    let art = Artifacts::locate().expect("artifacts (scripts/lab-prepare.sh)");
    let art_dir = art.dir.clone();
    let bins = Bins::locate().expect("binaries");
    let disk = helpers::TempDisk::create("e2e-tenant-lease", 256 << 20).expect("disk file");
    let mut spec = VmSpec::new(VM, VM_MAC);
    spec.disks = vec![disk.0.clone()];
    let (w, vm) = World::build_with(bins, Some(VmServer { art, spec })).expect("world");
    let vm = vm.expect("the VM");
    stamp(&format!("lab up, logs in {}", w.lab.log_dir().display()));

    let image = seal_test_os(&w, &art_dir);
    stamp(&format!("sealed the tenant test OS as image {image}"));
    let gw = w.start_gateway("gateway").expect("gateway run");
    let r =
        w.po.json(&[
            "request",
            "--count",
            "1",
            "--role",
            "build",
            "--image",
            &image,
            "--duration",
            "20m",
        ])
        .expect("request");
    assert_eq!(r["answer"]["granted"], 1, "{r}");
    let lease = r["answer"]["lease"]["id"]
        .as_str()
        .expect("lease id")
        .to_string();
    let requested = t0.elapsed();
    stamp(&format!("lease {lease} requested and granted"));

    let mut timeline = Vec::new();
    let mut last = requested;
    for (what, marker) in PHASES {
        let line = vm
            .wait_for(marker, Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("{what}: {e}\n{}", w.lab.dump(80)));
        let at = t0.elapsed();
        let line = complete_line(&vm, line.seq, marker);
        stamp(&format!("{what}: {}", line.trim()));
        timeline.push((what, at.saturating_sub(last)));
        last = at;
        if marker == "TENANT-OS-UP" {
            assert_eq!(field(&line, "lease"), Some(lease.as_str()), "{}", line);
        }
        if marker == "AGENT-PHASE start ok" {
            assert!(line.contains("kexec=loaded"), "{}", line);
        }
    }
    println!("\nphase timeline of lease {lease} (request -> tenant OS marker):");
    for (what, d) in &timeline {
        println!("  {what:<34} {:>7.2} s", d.as_secs_f64());
    }
    println!(
        "  {:<34} {:>7.2} s\n",
        "total",
        last.saturating_sub(requested).as_secs_f64()
    );
    for step in [
        "key-entry",
        "key-unwraps",
        "image-slot",
        "image-verifies",
        "lease-valid",
    ] {
        vm.wait_for(&format!("AGENT-GATE {step} ok"), Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("gate step {step}: {e}"));
    }

    // The LM: the server runs, the lease is active, the start report is in the timeline.
    let view: LeaseView =
        w.lm.console_json(&["lease", "show", &lease])
            .expect("lease");
    assert_eq!(view.state, LeaseState::Active, "{view:?}");
    assert_eq!(view.servers[0].state, "running", "{view:?}");
    let shown = w.lm.show(VM).expect("server show");
    assert!(
        shown.timeline.iter().any(|t| matches!(
            &t.kind,
            lm_api::EventKind::AgentReport {
                phase: lm_api::AgentPhase::Start,
                ok: true,
                ..
            }
        )),
        "no start report in the timeline: {shown:?}"
    );

    check_disk(&disk.0, &art_dir);
    no_key_at_the_lm(&w, &image, &lease, &disk.0);
    reboot_within_the_lease(&w, &vm, &gw, &lease, t0);
    release_and_wipe(&w, &vm, &lease, &disk.0, t0);
}

/// Lines of `p` with `text`.
fn count_lines(p: &lab::Process, text: &str) -> usize {
    p.lines_from(0)
        .iter()
        .filter(|l| l.text.contains(text))
        .count()
}

/// Power-cycles the VM within the lease: boot 2 enrolls, skips tunnel and transfer (the disk
/// has the image), passes the gate and starts the tenant OS again; the gateway serves nothing.
fn reboot_within_the_lease(w: &World, vm: &VmHandle, gw: &lab::Process, lease: &str, t0: Instant) {
    let stamp = |what: &str| println!("[{:>7.2}s] {what}", t0.elapsed().as_secs_f64());
    let served_before = count_lines(gw, "served request=\"image\"");
    let keys_before = count_lines(gw, "image key released");
    vm.power_off();
    let rebooted = Instant::now();
    vm.power_on().expect("power on");
    stamp("power-cycled the server within the lease");
    for marker in [
        "AGENT-ENROLLED",
        "AGENT-PHASE tunnel ok skipped=local-copy",
        "AGENT-PHASE transfer ok skipped=local-copy",
        "AGENT-GATE image-verifies ok",
        "AGENT-PHASE start ok",
    ] {
        let l = vm
            .wait_marker(2, marker, Duration::from_secs(240))
            .unwrap_or_else(|e| panic!("boot 2, {marker}: {e}\n{}", w.lab.dump(80)));
        stamp(&format!(
            "boot 2: {}",
            complete_line(vm, l.seq, marker).trim()
        ));
    }
    let up = format!("TENANT-OS-UP lease={lease}");
    vm.wait_marker(2, &up, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("boot 2, tenant OS: {e}\n{}", w.lab.dump(80)));
    stamp(&format!(
        "boot 2: tenant OS up from the local copy, {:.2} s after the power-on",
        rebooted.elapsed().as_secs_f64()
    ));
    assert_eq!(
        count_lines(gw, "served request=\"image\""),
        served_before,
        "the gateway served image bytes again after the reboot"
    );
    assert_eq!(count_lines(gw, "image key released"), keys_before);
    let view: LeaseView = w.lm.console_json(&["lease", "show", lease]).expect("lease");
    assert_eq!(view.servers[0].state, "running", "{view:?}");
}

/// Releases the lease; the LM power-cycles the server (its tenant OS runs, no agent hears the
/// release) through the lab's virtual BMC, the agent comes up and wipes: the server is idle,
/// the lease ended, the disk's key table empty and its slot header gone.
fn release_and_wipe(w: &World, vm: &VmHandle, lease: &str, disk: &Path, t0: Instant) {
    let stamp = |what: &str| println!("[{:>7.2}s] {what}", t0.elapsed().as_secs_f64());
    let before = vm.boots();
    w.po.json(&["release", lease]).expect("release");
    stamp("released; the tenant OS still runs: the LM power-cycles it into the agent");
    let boot = before + 1;
    vm.wait_boot(boot, Duration::from_secs(30))
        .unwrap_or_else(|e| {
            panic!(
                "the LM did not power-cycle the server: {e}\n{}",
                w.lab.dump(40)
            )
        });
    // The cycle is audited once the BMC answered.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let audit = w.lm.console(&["audit", "list"]).expect("audit");
        if audit.contains("server.power-cycled") {
            break;
        }
        assert!(
            Instant::now() < end,
            "no server.power-cycled audit entry:\n{audit}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let l = vm
        .wait_marker(boot, "AGENT-WIPED", Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("wipe boot: {e}\n{}", w.lab.dump(80)));
    stamp(&format!(
        "wipe boot: {}",
        complete_line(vm, l.seq, "AGENT-WIPED").trim()
    ));
    w.lm.wait_server(VM, Duration::from_secs(30), |v| v.state.name() == "idle")
        .expect("server idle after the wipe");
    let view: LeaseView = w.lm.console_json(&["lease", "show", lease]).expect("lease");
    assert!(view.state.is_final(), "{view:?}");
    let wiped = std::fs::read(disk).expect("disk");
    assert_eq!(
        &wiped[4096..4108],
        b"LSKTAB1\n\0\0\0\0",
        "start-up keys left on the disk"
    );
    assert!(
        wiped[1 << 20..(1 << 20) + 4096].iter().all(|b| *b == 0),
        "the slot header (wrapped image key) survived"
    );
    // Even with the host's identity (its weak root) nothing on the disk yields a start-up key.
    let facts = w.lm.show(VM).expect("server").facts.expect("facts");
    let left = lab::tenant::key_scan::weak_startup_key(
        &wiped,
        &lab::tenant::key_scan::Identity::from_facts(&facts),
    );
    assert!(
        left.is_err(),
        "a start-up key is still recoverable from the disk"
    );
    stamp("server idle, lease ended, every start-up key on the disk destroyed");

    // Booting the same VM again after the release starts nothing: the LM expects no boot
    // (its netboot gate is closed for an idle server), and the disk holds no key anyway.
    let end = Instant::now() + Duration::from_secs(30);
    while vm.is_running() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
    }
    vm.power_on().expect("power on after the release");
    let again = vm.current().expect("the boot after the release");
    std::thread::sleep(Duration::from_secs(20));
    let started = again
        .console()
        .lines_from(0)
        .into_iter()
        .filter(|l| l.text.contains("AGENT-") || l.text.contains("TENANT-OS-"))
        .map(|l| l.text)
        .collect::<Vec<_>>();
    assert!(
        started.is_empty(),
        "something booted after the release: {started:?}"
    );
    vm.power_off();
    stamp("booted again after the release: no answer from the LM, nothing started");
}

/// The LM's store, its log and its API answers hold neither the image key (from the
/// organizer's key store) nor the start-up key (recovered from the server's disk with the
/// weak root of the identity the agent reported), in any encoding; the scanner finds the image
/// key in the organizer's key file (the control).
fn no_key_at_the_lm(w: &World, image: &str, lease: &str, disk: &Path) {
    use lab::tenant::key_scan::{Identity, files_with, find, weak_startup_key};
    let key_file = w.po.state_dir.join(format!("keys/{image}.1.key"));
    let text = std::fs::read_to_string(&key_file).expect("the organizer's key file");
    let image_key = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text.trim())
        .expect("base64 key");
    assert!(
        find(text.as_bytes(), &image_key).is_some(),
        "the scanner misses a planted key"
    );
    let facts = w.lm.show(VM).expect("server").facts.expect("facts");
    let startup = weak_startup_key(
        &std::fs::read(disk).expect("disk"),
        &Identity::from_facts(&facts),
    )
    .expect("the start-up key, recovered from the disk");
    let answers: Vec<String> = [
        vec!["lease", "show", lease, "--json"],
        vec!["server", "show", VM, "--json"],
        vec!["lease", "list", "--json"],
        vec!["events", "--json"],
        vec!["audit", "list", "--json"],
    ]
    .iter()
    .map(|a| w.lm.console(a).unwrap_or_else(|e| panic!("{a:?}: {e}")))
    .collect();
    let log = std::fs::read(w.lab.log_dir().join("lease-manager.log")).expect("LM log");
    for (what, key) in [
        ("image key", &image_key[..]),
        ("start-up key", &startup[..]),
    ] {
        let stored = files_with(w.lm.state_dir(), key).expect("scan");
        assert!(
            stored.is_empty(),
            "the {what} is in the LM's store: {stored:?}"
        );
        assert!(find(&log, key).is_none(), "the {what} is in the LM's log");
        for a in &answers {
            assert!(
                find(a.as_bytes(), key).is_none(),
                "the {what} is in an API answer"
            );
        }
    }
    println!(
        "         neither key in the LM's store ({}), log or {} API answers",
        w.lm.state_dir().display(),
        answers.len()
    );
}

fn check_disk(disk: &Path, art_dir: &Path) {
    // The disk holds the sealed image, no plaintext of the tenant's initramfs.
    let stored = std::fs::read(disk).expect("disk");
    assert_eq!(&stored[1 << 20..(1 << 20) + 8], b"LSSLOT01");
    let init = std::fs::read(art_dir.join("boot/tenant-initrd.cpio.gz")).expect("initrd");
    let probe = &init[init.len() / 2..init.len() / 2 + 64];
    assert!(
        !stored.windows(probe.len()).any(|w| w == probe),
        "tenant initramfs bytes in the clear on the disk"
    );
}

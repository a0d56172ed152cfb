//! End-to-end in QEMU, the start gate's refusals on a real server (issue 5). Each test leases
//! a VM with a software TPM 2.0 and a virtio disk until its tenant OS is up, then:
//! - the disk is copied to another host (another swtpm state, another SMBIOS identity) that
//!   answers with the leased server's MAC, so the LM takes it for the server rebooting within
//!   its lease: its agent enrolls, finds the lease's start-up key on the disk, and the gate
//!   refuses at `key-unwraps`; nothing starts and the refusal is reported to the LM;
//! - one byte of a stored chunk is flipped on the leased server's own disk and it is
//!   power-cycled: the gate refuses at `image-verifies`, nothing starts.
//!
//! Needs root, QEMU, swtpm and `scripts/lab-prepare.sh`; enabled with `--features lab/e2e`.
#![cfg(feature = "e2e")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab::qemu::Vm;
use lab::tenant::world::{Bins, VmServer, World, skip_reason};
use lab::{Artifacts, MacAddr, VmHandle, VmSpec};

/// The slot layout (agent_core::disk_layout): slot header at 1 MiB, manifest 4 KiB after it.
const SLOT_OFFSET: usize = 1 << 20;
const SLOT_DATA: usize = SLOT_OFFSET + 4096;
/// The leased server's name in the lab and the inventory.
const SERVER: &str = "gvm";

/// Files of one test (disks, TPM states), removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("e2e-gate-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    fn disk(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::File::create(&p)
            .and_then(|f| f.set_len(256 << 20))
            .unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Leased {
    w: World,
    vm: VmHandle,
    lease: String,
    disk: PathBuf,
}

/// A VM with a TPM and a disk, leased until its tenant OS is up.
fn lease_to_tenant_os(s: &Scratch, name: &str, mac: MacAddr) -> Leased {
    let art = Artifacts::locate().expect("artifacts (scripts/lab-prepare.sh)");
    let kernel = art.kernel();
    let initrd = art.dir.join("boot/tenant-initrd.cpio.gz");
    let disk = s.disk("disk.img");
    let mut spec = VmSpec::new(name, mac);
    spec.disks = vec![disk.clone()];
    spec.tpm = Some(s.0.join("tpm"));
    let (w, vm) = World::build_with(
        Bins::locate().expect("binaries"),
        Some(VmServer { art, spec }),
    )
    .expect("world");
    let vm = vm.expect("the VM");
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
        .expect("seal");
    let image = e["id"].as_str().expect("image id").to_string();
    w.start_gateway("gateway").expect("gateway");
    let r =
        w.po.json(&[
            "request",
            "--count",
            "1",
            "--role",
            "gate",
            "--image",
            &image,
            "--duration",
            "20m",
        ])
        .expect("request");
    let lease = r["answer"]["lease"]["id"]
        .as_str()
        .expect("lease id")
        .to_string();
    let start = vm
        .wait_for("AGENT-PHASE start ok", Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("no start: {e}\n{}", w.lab.dump(80)));
    println!("{}", start.text.trim());
    vm.wait_for(
        &format!("TENANT-OS-UP lease={lease}"),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("no tenant OS: {e}\n{}", w.lab.dump(80)));
    Leased { w, vm, lease, disk }
}

/// Waits on `console` for the gate's refusal at `step`; the line.
fn refused_at(w: &World, console: &lab::Process, step: &str) -> String {
    let marker = format!("AGENT-GATE {step} refused");
    let l = console
        .wait_for(&marker, Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no refusal at {step}: {e}\n{}", w.lab.dump(80)));
    // The whole line (the marker may match a line still arriving).
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(full) = console
            .lines_from(l.seq)
            .into_iter()
            .find(|x| x.text.contains(&marker))
        {
            return full.text;
        }
        assert!(Instant::now() < end, "no complete refusal line");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Nothing started after the refusal, and the agent powered off (QEMU exits: -no-reboot).
fn nothing_started(w: &World, console: &lab::Process, lease: &str, from: u64) {
    let end = Instant::now() + Duration::from_secs(60);
    while console.is_running() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
    }
    let lines = console.lines_from(from);
    assert!(
        !lines
            .iter()
            .any(|l| l.text.contains("TENANT-OS-UP") || l.text.contains("AGENT-KEXEC")),
        "something started after the refusal:\n{}",
        w.lab.dump(40)
    );
    assert!(
        lines.iter().any(|l| l.text.contains("AGENT-POWEROFF")),
        "the agent did not power off"
    );
    // The refusal reached the LM: a failed start report in the server's timeline.
    let shown = w.lm.show(SERVER).expect("server show");
    assert!(
        shown.timeline.iter().any(|t| matches!(
            &t.kind,
            lm_api::EventKind::AgentReport { phase: lm_api::AgentPhase::Start, ok: false, detail, .. }
                if detail.contains("start gate refused")
        )),
        "no failed start report for lease {lease} in the timeline: {:#?}",
        shown.timeline
    );
}

/// The first byte of the stored chunks: after the manifest, on the next 4 KiB boundary.
fn chunks_offset(disk: &[u8]) -> usize {
    assert_eq!(&disk[SLOT_OFFSET..SLOT_OFFSET + 8], b"LSSLOT01", "no slot");
    let lease_len = disk[SLOT_OFFSET + 8] as usize;
    let at = SLOT_OFFSET + 9 + lease_len + 16 + 4;
    let manifest_len = u32::from_be_bytes(disk[at..at + 4].try_into().unwrap()) as usize;
    SLOT_DATA + manifest_len.div_ceil(4096) * 4096
}

#[test]
fn a_disk_copied_to_another_host_is_refused_at_key_unwraps() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let s = Scratch::new("copy");
    let mac = MacAddr([0x52, 0x54, 0x00, 0x77, 0x07, 0x01]);
    let l = lease_to_tenant_os(&s, SERVER, mac);
    l.vm.power_off();
    let copy = s.0.join("copy.img");
    std::fs::copy(&l.disk, &copy).expect("copy the disk");
    // Another host: its own TPM and SMBIOS identity, the leased server's MAC.
    let mut other = VmSpec::new("gvm-clone", mac);
    other.smbios_uuid = "4c414230-0000-4000-8000-0000c0ffee01".into();
    other.smbios_serial = "OTHER-HOST".into();
    other.disks = vec![copy];
    other.tpm = Some(s.0.join("tpm-other"));
    other.tap = Some("tapclone".into());
    other.log_dir = Some(l.w.lab.log_dir().to_path_buf());
    l.w.lab
        .netns()
        .add_tap("tapclone", Some("br0"))
        .expect("tap");
    let vm = Vm::start(&other, Some(l.w.lab.netns().name()), 1).expect("the other host");
    let line = refused_at(&l.w, vm.console(), "key-unwraps");
    println!("{}", line.trim());
    assert!(
        line.contains("another TPM") || line.contains("does not unwrap"),
        "{line}"
    );
    nothing_started(&l.w, vm.console(), &l.lease, 0);
    vm.power_off();
}

#[test]
fn a_tampered_chunk_on_the_disk_is_refused_at_image_verifies() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let s = Scratch::new("tamper");
    let l = lease_to_tenant_os(&s, SERVER, MacAddr([0x52, 0x54, 0x00, 0x77, 0x08, 0x01]));
    l.vm.power_off();
    flip_chunk_byte(&l.disk);
    l.vm.power_on().expect("power on");
    let boot = l.vm.current().expect("boot 2");
    let line = refused_at(&l.w, boot.console(), "image-verifies");
    println!("{}", line.trim());
    assert!(line.contains("chunk"), "{line}");
    nothing_started(&l.w, boot.console(), &l.lease, 0);
}

fn flip_chunk_byte(disk: &Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut head = vec![0u8; SLOT_DATA];
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .expect("disk");
    f.read_exact(&mut head).expect("read the slot header");
    let at = chunks_offset(&head) as u64 + 4096 + 7;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0x20;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&b).unwrap();
    f.sync_all().unwrap();
}

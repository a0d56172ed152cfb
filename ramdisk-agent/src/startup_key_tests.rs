//! The start-up key and the gate against a disk image file: a clean store and start, and each
//! refusal of issue 5 at its step: a copy on another host, a tampered chunk, a shredded key,
//! an altered entry, a released lease.

use std::io::{Read, Write};

use agent_core::disk_layout::SLOT_DATA;
use agent_core::start_gate::{self, GateStep, LeaseWord, Refusal};
use ring::rand::SystemRandom;
use sealed_image::{ImageId, ImageKey, KeyEpoch, SealParams, Sealer, SigningKey};

use super::*;

const LEASE: &str = "l-0011223344556677";
const NOW: u64 = 1_800_000_000_000;
const KERNEL: &[u8] = b"KERNEL-BYTES-START-UP-KEY-TEST";

struct Fixture {
    _dir: tempfile::TempDir,
    disk: LocalDisk,
    key: ImageKey,
    signer: SigningKey,
    manifest: Vec<u8>,
    chunks: File,
    kernel: Vec<u8>,
    initrd: Vec<u8>,
}

fn identity(serial: &str) -> HostIdentity {
    HostIdentity {
        smbios_uuid: "4c414230-0000-4000-8000-025400770a01".into(),
        smbios_serial: serial.into(),
        macs: vec!["02:54:00:77:0a:01".into()],
        disk_serials: vec![],
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    File::create(&path).unwrap().set_len(8 << 20).unwrap();
    let signer = SigningKey::generate(&SystemRandom::new()).unwrap();
    let key = ImageKey::from_bytes([0x42; 32]);
    let mut params = SealParams::new(ImageId::from_bytes([3; 16]), KeyEpoch(2), 1);
    params.chunk_size = 4096;
    let kernel: Vec<u8> = KERNEL.iter().copied().cycle().take(9000).collect();
    let initrd: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    let mut chunks = tempfile::tempfile().unwrap();
    let mut sealer = Sealer::new(&params, "console=ttyS0 quiet", &key, &mut chunks).unwrap();
    sealer.start_section("kernel").unwrap();
    sealer.write_all(&kernel).unwrap();
    sealer.start_section("initramfs").unwrap();
    sealer.write_all(&initrd).unwrap();
    let manifest = sealer.finish(&signer).unwrap().encode();
    Fixture {
        disk: LocalDisk::open(&path).unwrap(),
        _dir: dir,
        key,
        signer,
        manifest,
        chunks,
        kernel,
        initrd,
    }
}

fn install_into(f: &mut Fixture, root: &HostRoot) {
    let mut calls = 0;
    install(
        &f.disk,
        root,
        &SystemRandom::new(),
        Install {
            lease: LEASE,
            not_after_ms: NOW + 3_600_000,
            image: ImageId::from_bytes([3; 16]),
            epoch: KeyEpoch(2),
            signing_key: f.signer.verifying_key(),
            image_key: &f.key,
            manifest: &f.manifest,
            chunks: &mut f.chunks,
        },
        &mut |_, _| calls += 1,
    )
    .unwrap();
    assert!(calls > 0, "progress was reported");
}

fn gate(disk: &LocalDisk, root: &HostRoot, word: LeaseWord) -> Result<Startable, Refusal> {
    let mut ask = move || word.clone();
    let mut g = DiskGate {
        disk,
        lease: LEASE,
        root: Ok(root),
        ask_lm: &mut ask,
        now_ms: &|| NOW,
        sink: &|name| memfd(name),
    };
    start_gate::run(&mut g, &mut |_| {})
}

fn live() -> LeaseWord {
    LeaseWord::Continue {
        ends_ms: NOW + 1000,
    }
}

fn read_all(mut f: &File) -> Vec<u8> {
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}

#[test]
fn a_stored_image_passes_the_gate_on_its_host_with_plaintext_only_in_ram() {
    let mut f = fixture();
    let root = HostRoot::weak(&identity("LAB-SRV1")).unwrap();
    install_into(&mut f, &root);
    let s = gate(&f.disk, &root, live()).unwrap();
    assert_eq!(read_all(&s.kernel), f.kernel);
    assert_eq!(read_all(s.initrd.as_ref().unwrap()), f.initrd);
    assert_eq!(s.cmdline, "console=ttyS0 quiet");
    assert_eq!(s.chunks, 4);
    // The disk holds no plaintext and no key.
    let disk = std::fs::read(f.disk.path()).unwrap();
    for needle in [KERNEL, &f.key.expose_secret()[..], &f.initrd[1000..1032]] {
        assert!(
            !disk.windows(needle.len()).any(|w| w == needle),
            "found plaintext or key bytes on the disk"
        );
    }
}

#[test]
fn the_disk_copied_to_another_host_stops_at_key_unwraps() {
    let mut f = fixture();
    install_into(&mut f, &HostRoot::weak(&identity("LAB-SRV1")).unwrap());
    let other = HostRoot::weak(&identity("LAB-SRV2")).unwrap();
    let r = gate(&f.disk, &other, live()).unwrap_err();
    assert_eq!(r.step, GateStep::KeyUnwraps, "{r}");
    let tpm = HostRoot::tpm(Zeroizing::new([1; 32]));
    assert_eq!(
        gate(&f.disk, &tpm, live()).unwrap_err().step,
        GateStep::KeyUnwraps
    );
}

#[test]
fn a_tampered_chunk_stops_at_image_verifies() {
    let mut f = fixture();
    let root = HostRoot::weak(&identity("LAB-SRV1")).unwrap();
    install_into(&mut f, &root);
    let h = f.disk.read_slot_header().unwrap();
    f.disk.flip_byte(h.chunks_offset() + 4096 + 100).unwrap();
    let r = gate(&f.disk, &root, live()).unwrap_err();
    assert_eq!(r.step, GateStep::ImageVerifies, "{r}");
    assert!(r.reason.contains("chunk"), "{r}");
}

#[test]
fn a_tampered_manifest_or_slot_header_is_refused() {
    let mut f = fixture();
    let root = HostRoot::weak(&identity("LAB-SRV1")).unwrap();
    install_into(&mut f, &root);
    f.disk.flip_byte(SLOT_DATA + 40).unwrap();
    assert_eq!(
        gate(&f.disk, &root, live()).unwrap_err().step,
        GateStep::ImageVerifies
    );
    f.disk.flip_byte(SLOT_DATA + 40).unwrap();
    assert!(gate(&f.disk, &root, live()).is_ok());
    f.disk
        .flip_byte(agent_core::disk_layout::SLOT_OFFSET + 12)
        .unwrap();
    assert_eq!(
        gate(&f.disk, &root, live()).unwrap_err().step,
        GateStep::ImageSlot
    );
}

#[test]
fn an_altered_table_entry_does_not_unwrap() {
    let mut f = fixture();
    let root = HostRoot::weak(&identity("LAB-SRV1")).unwrap();
    install_into(&mut f, &root);
    let mut t = f.disk.read_table().unwrap();
    let mut e = t.find(LEASE).unwrap().clone();
    e.not_after_ms += 86_400_000;
    t.upsert(e).unwrap();
    f.disk.write_table(&t).unwrap();
    assert_eq!(
        gate(&f.disk, &root, live()).unwrap_err().step,
        GateStep::KeyUnwraps
    );
}

#[test]
fn after_the_shred_nothing_starts_and_nothing_opens() {
    let mut f = fixture();
    let root = HostRoot::weak(&identity("LAB-SRV1")).unwrap();
    install_into(&mut f, &root);
    let before = std::fs::read(f.disk.path()).unwrap();
    assert!(shred(&f.disk, LEASE).unwrap());
    let r = gate(&f.disk, &root, live()).unwrap_err();
    assert_eq!(r.step, GateStep::KeyEntry, "{r}");
    assert!(f.disk.read_slot_header().is_err());
    // The wrapped start-up key and the wrapped image key are gone from the disk.
    let after = std::fs::read(f.disk.path()).unwrap();
    let h = SlotHeader::decode(
        &before[agent_core::disk_layout::SLOT_OFFSET as usize..][..4096],
        &crate::local_disk::sha256,
    )
    .unwrap();
    assert!(!after.windows(48).any(|w| w == h.wrapped_image_key));
    assert!(
        !shred(&f.disk, LEASE).unwrap(),
        "a second shred finds nothing"
    );
}

#[test]
fn a_released_or_unconfirmed_lease_stops_at_lease_valid() {
    let mut f = fixture();
    let root = HostRoot::weak(&identity("LAB-SRV1")).unwrap();
    install_into(&mut f, &root);
    for word in [
        LeaseWord::Release,
        LeaseWord::Unreachable("no route".into()),
        LeaseWord::Continue { ends_ms: NOW - 1 },
    ] {
        assert_eq!(
            gate(&f.disk, &root, word).unwrap_err().step,
            GateStep::LeaseValid
        );
    }
}

#[test]
fn a_blank_or_damaged_disk_has_no_entry() {
    let f = fixture();
    let root = HostRoot::weak(&identity("LAB-SRV1")).unwrap();
    assert_eq!(
        gate(&f.disk, &root, live()).unwrap_err().step,
        GateStep::KeyEntry
    );
    let mut t = agent_core::startup_table::KeyTable::default();
    t.upsert(TableEntry {
        lease: LEASE.into(),
        image: [0; 16],
        epoch: 0,
        not_after_ms: 0,
        root: RootMode::Weak,
        signing_key: [0; 32],
        nonce: [0; NONCE_LEN],
        wrapped: [0; WRAPPED_LEN],
    })
    .unwrap();
    f.disk.write_table(&t).unwrap();
    f.disk
        .flip_byte(agent_core::disk_layout::TABLE_OFFSET + 20)
        .unwrap();
    let r = gate(&f.disk, &root, live()).unwrap_err();
    assert_eq!(r.step, GateStep::KeyEntry);
    assert!(r.reason.contains("checksum"), "{r}");
}

#[test]
fn the_weak_root_depends_on_every_identity_fact_and_not_on_order() {
    let a = identity("S");
    let key = |id: &HostIdentity| *HostRoot::weak(id).unwrap().key;
    let mut b = a.clone();
    b.macs.push("02:00:00:00:00:09".into());
    assert_ne!(key(&a), key(&b));
    let mut c = b.clone();
    c.macs.reverse();
    assert_eq!(key(&b), key(&c));
    let mut d = a.clone();
    d.disk_serials.push("QM00001".into());
    assert_ne!(key(&a), key(&d));
    assert!(HostRoot::weak(&HostIdentity::default()).is_err());
    assert_eq!(
        format!("{:?}", HostRoot::weak(&a).unwrap()),
        "HostRoot(weak, <redacted>)"
    );
}

#[test]
fn shred_all_destroys_every_key_and_leaves_a_foreign_disk_alone() {
    let f = fixture();
    // A disk the agent never wrote: nothing is written.
    std::fs::write(f.disk.path(), vec![0xa5; 8 << 20]).unwrap();
    assert_eq!(shred_all(&f.disk).unwrap(), 0);
    assert!(
        std::fs::read(f.disk.path())
            .unwrap()
            .iter()
            .all(|b| *b == 0xa5)
    );

    let mut f = fixture();
    let root = HostRoot::weak(&identity("LAB-SRV1")).unwrap();
    install_into(&mut f, &root);
    assert_eq!(shred_all(&f.disk).unwrap(), 1);
    assert_eq!(
        gate(&f.disk, &root, live()).unwrap_err().step,
        GateStep::KeyEntry
    );
    assert!(f.disk.read_slot_header().is_err());
    assert_eq!(shred_all(&f.disk).unwrap(), 0);
}

use proptest::prelude::*;

use crate::disk_layout::*;

/// A stand-in digest for the codec tests (the shell passes SHA-256).
fn digest(b: &[u8]) -> [u8; 32] {
    let mut d = [0u8; 32];
    for (i, x) in b.iter().enumerate() {
        d[i % 32] = d[i % 32].wrapping_mul(31).wrapping_add(*x);
    }
    d
}

fn header() -> SlotHeader {
    SlotHeader {
        lease: "l-abc".into(),
        image: [4; 16],
        epoch: 2,
        manifest_len: 1027,
        chunks_len: 26_214_800,
        nonce: [5; 12],
        wrapped_image_key: [6; 48],
    }
}

#[test]
fn headers_round_trip_and_place_the_chunks_on_a_block() {
    let h = header();
    let b = h.encode(&digest);
    assert_eq!(SlotHeader::decode(&b, &digest).unwrap(), h);
    assert_eq!(h.chunks_offset(), SLOT_DATA + BLOCK);
    assert_eq!(h.end(), SLOT_DATA + BLOCK + 26_214_800);
    let d = DiskHeader {
        table_len: 300,
        table_sha256: [8; 32],
    };
    assert_eq!(DiskHeader::decode(&d.encode()).unwrap(), d);
}

#[test]
fn the_image_key_wrap_is_bound_to_the_slot_facts() {
    let h = header();
    let mut other = h.clone();
    other.lease = "l-abd".into();
    assert_ne!(other.aad(), h.aad());
    let mut other = h.clone();
    other.chunks_len += 1;
    assert_ne!(other.aad(), h.aad());
    let mut same = h.clone();
    same.nonce = [0; 12];
    assert_eq!(same.aad(), h.aad());
}

#[test]
fn damaged_or_missing_headers_are_refused() {
    assert_eq!(
        SlotHeader::decode(&[0; 4096], &digest),
        Err(LayoutError::NoSlot)
    );
    assert_eq!(DiskHeader::decode(&[0; 44]), Err(LayoutError::NoDiskHeader));
    let good = header().encode(&digest);
    for i in 8..good.len() {
        let mut b = good.clone();
        b[i] ^= 0x40;
        assert!(SlotHeader::decode(&b, &digest).is_err(), "flip at {i}");
    }
    for cut in 0..good.len() {
        assert!(
            SlotHeader::decode(&good[..cut], &digest).is_err(),
            "cut {cut}"
        );
    }
    let mut big = header();
    big.manifest_len = MANIFEST_MAX + 1;
    let e = SlotHeader::decode(&big.encode(&digest), &digest).unwrap_err();
    assert!(e.to_string().contains("manifest length"), "{e}");
    let mut d = DiskHeader {
        table_len: 0,
        table_sha256: [0; 32],
    }
    .encode();
    d[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        DiskHeader::decode(&d),
        Err(LayoutError::Damaged { .. })
    ));
}

#[test]
fn host_root_records_round_trip_and_damage_is_refused() {
    let rec = encode_root(b"sealed-blob-bytes", &digest);
    assert_eq!(
        decode_root(&rec, &digest),
        Ok(Some(&b"sealed-blob-bytes"[..]))
    );
    assert_eq!(decode_root(&[0; 64], &digest), Ok(None));
    let mut bad = rec.clone();
    bad[50] ^= 1;
    assert!(decode_root(&bad, &digest).is_err());
    assert!(decode_root(&rec[..rec.len() - 1], &digest).is_err());
    let mut huge = rec.clone();
    huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(decode_root(&huge, &digest).is_err());
}

proptest! {
    #[test]
    fn any_header_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = DiskHeader::decode(&bytes);
        let _ = SlotHeader::decode(&bytes, &digest);
        let mut framed = SLOT_MAGIC.to_vec();
        framed.extend_from_slice(&bytes);
        let _ = SlotHeader::decode(&framed, &digest);
        let _ = decode_root(&bytes, &digest);
        let mut framed = ROOT_MAGIC.to_vec();
        framed.extend_from_slice(&bytes);
        let _ = decode_root(&framed, &digest);
    }
}

use proptest::prelude::*;

use crate::startup_table::*;

fn entry(lease: &str) -> TableEntry {
    TableEntry {
        lease: lease.into(),
        image: [7; 16],
        epoch: 3,
        not_after_ms: 1_800_000_000_000,
        root: RootMode::Tpm,
        signing_key: [9; 32],
        nonce: [1; NONCE_LEN],
        wrapped: [2; WRAPPED_LEN],
    }
}

#[test]
fn a_table_round_trips() {
    let mut t = KeyTable::default();
    t.upsert(entry("l-0123abcd")).unwrap();
    let mut weak = entry("l-ffff");
    weak.root = RootMode::Weak;
    t.upsert(weak).unwrap();
    let bytes = t.encode();
    assert_eq!(&bytes[..8], MAGIC);
    assert_eq!(KeyTable::decode(&bytes).unwrap(), t);
    assert_eq!(
        KeyTable::decode(&KeyTable::default().encode())
            .unwrap()
            .entries()
            .len(),
        0
    );
}

#[test]
fn upsert_replaces_and_remove_shreds_only_that_lease() {
    let mut t = KeyTable::default();
    t.upsert(entry("l-a")).unwrap();
    t.upsert(entry("l-b")).unwrap();
    let mut again = entry("l-a");
    again.epoch = 4;
    t.upsert(again).unwrap();
    assert_eq!(t.entries().len(), 2);
    assert_eq!(t.find("l-a").unwrap().epoch, 4);
    assert!(t.remove("l-a"));
    assert!(!t.remove("l-a"));
    assert!(t.find("l-a").is_none());
    assert!(t.find("l-b").is_some());
}

#[test]
fn bad_lease_ids_are_refused() {
    for bad in ["", "-x", "L-UPPER", "l-a/b", "l-..", "l a", &"l".repeat(65)] {
        let mut t = KeyTable::default();
        assert!(
            matches!(t.upsert(entry(bad)), Err(TableError::LeaseId(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn a_full_table_refuses_one_more() {
    let mut t = KeyTable::default();
    for i in 0..MAX_ENTRIES {
        t.upsert(entry(&format!("l-{i}"))).unwrap();
    }
    assert!(matches!(
        t.upsert(entry("l-more")),
        Err(TableError::TooMany(_))
    ));
}

#[test]
fn the_aad_covers_every_field_but_nonce_and_wrap() {
    let base = entry("l-a");
    let mut variants = Vec::new();
    let mut e = base.clone();
    e.lease = "l-b".into();
    variants.push(e);
    let mut e = base.clone();
    e.image[0] ^= 1;
    variants.push(e);
    let mut e = base.clone();
    e.epoch += 1;
    variants.push(e);
    let mut e = base.clone();
    e.not_after_ms += 1;
    variants.push(e);
    let mut e = base.clone();
    e.root = RootMode::Weak;
    variants.push(e);
    let mut e = base.clone();
    e.signing_key[31] ^= 1;
    variants.push(e);
    for v in variants {
        assert_ne!(v.aad(), base.aad(), "{v:?}");
    }
    let mut e = base.clone();
    e.nonce = [5; NONCE_LEN];
    e.wrapped = [6; WRAPPED_LEN];
    assert_eq!(e.aad(), base.aad());
}

#[test]
fn hostile_files_are_refused_with_a_reason() {
    let mut t = KeyTable::default();
    t.upsert(entry("l-a")).unwrap();
    let good = t.encode();
    assert_eq!(KeyTable::decode(b""), Err(TableError::Magic));
    assert_eq!(
        KeyTable::decode(b"LSKTAB2\n\0\0\0\0"),
        Err(TableError::Magic)
    );
    for cut in 8..good.len() {
        assert!(
            matches!(
                KeyTable::decode(&good[..cut]),
                Err(TableError::Truncated { .. })
            ),
            "cut at {cut}"
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(KeyTable::decode(&trailing), Err(TableError::Trailing(1)));
    let mut many = good.clone();
    many[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        KeyTable::decode(&many),
        Err(TableError::TooMany(_))
    ));
    let mut mode = good.clone();
    let at = 8 + 4 + 1 + 3 + 16 + 4 + 8;
    mode[at] = 9;
    let e = KeyTable::decode(&mode).unwrap_err();
    assert!(e.to_string().contains("unknown host root mode 9"), "{e}");
    let mut dup = KeyTable::default().encode();
    dup[8..12].copy_from_slice(&2u32.to_be_bytes());
    let mut one = Vec::new();
    one.extend_from_slice(&good[12..]);
    dup.extend_from_slice(&one);
    dup.extend_from_slice(&one);
    assert!(
        KeyTable::decode(&dup)
            .unwrap_err()
            .to_string()
            .contains("twice")
    );
    let mut slash = good.clone();
    slash[13] = b'/';
    assert!(matches!(
        KeyTable::decode(&slash),
        Err(TableError::Entry { .. })
    ));
}

proptest! {
    #[test]
    fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = KeyTable::decode(&bytes);
        let mut framed = MAGIC.to_vec();
        framed.extend_from_slice(&bytes);
        if let Ok(t) = KeyTable::decode(&framed) {
            prop_assert_eq!(t.encode(), framed);
        }
    }
}

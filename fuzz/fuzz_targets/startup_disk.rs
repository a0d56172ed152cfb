//! Fuzz target: the agent's local-disk formats (`agent_core::startup_table` and
//! `agent_core::disk_layout`): the start-up key table, the disk header, the slot header and the
//! host root record. The first byte picks a mode: 0 the raw bytes to every parser; 1 the same
//! bytes behind each parser's magic (so they get past the first check); 2 behind the magic and
//! with a correct SHA-256 where the format has one (slot header, host root record, so the
//! parsers reach the fields after the checksum). Nothing may panic; a table that parses must
//! encode back to the same bytes; a slot header that parses must encode back to the bytes it
//! was read from; a host root blob is a slice of the record; the lengths a parsed header
//! claims stay in range.

#![no_main]

use agent_core::disk_layout::{
    self, DISK_MAGIC, DiskHeader, MANIFEST_MAX, ROOT_MAGIC, ROOT_MAX, SLOT_DATA, SLOT_MAGIC,
    SlotHeader, TABLE_MAX,
};
use agent_core::startup_table::{self, KeyTable, MAX_ENTRIES};
use libfuzzer_sys::fuzz_target;

fn sha256(b: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn with(magic: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(magic.len() + rest.len());
    v.extend_from_slice(magic);
    v.extend_from_slice(rest);
    v
}

fn table(b: &[u8]) {
    if let Ok(t) = KeyTable::decode(b) {
        assert!(t.entries().len() <= MAX_ENTRIES);
        assert_eq!(
            t.encode(),
            b,
            "a parsed key table does not encode to its bytes"
        );
        for e in t.entries() {
            assert!(startup_table::check_lease_id(&e.lease).is_ok());
            assert_eq!(t.find(&e.lease), Some(e));
            let _ = e.aad();
        }
    }
}

fn disk_header(b: &[u8]) {
    if let Ok(h) = DiskHeader::decode(b) {
        assert!(u64::from(h.table_len) <= TABLE_MAX);
        assert_eq!(&h.encode()[..], &b[..44]);
    }
}

fn slot(b: &[u8]) {
    if let Ok(h) = SlotHeader::decode(b, &sha256) {
        let enc = h.encode(&sha256);
        assert!(enc.len() <= b.len());
        assert_eq!(
            enc,
            &b[..enc.len()],
            "a parsed slot header does not encode to its bytes"
        );
        assert!(h.manifest_len > 0 && h.manifest_len <= MANIFEST_MAX);
        assert!(h.chunks_offset() >= SLOT_DATA + u64::from(h.manifest_len));
        assert!(h.end() >= h.chunks_offset());
        let _ = h.aad();
    }
}

fn root(b: &[u8]) {
    if let Ok(Some(blob)) = disk_layout::decode_root(b, &sha256) {
        assert!(blob.len() as u64 <= ROOT_MAX - 44);
        assert_eq!(
            disk_layout::encode_root(blob, &sha256),
            &b[..44 + blob.len()]
        );
    }
}

fn all(b: &[u8]) {
    table(b);
    disk_header(b);
    slot(b);
    root(b);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => all(rest),
        1 => {
            table(&with(startup_table::MAGIC, rest));
            disk_header(&with(DISK_MAGIC, rest));
            slot(&with(SLOT_MAGIC, rest));
            root(&with(ROOT_MAGIC, rest));
        }
        _ => {
            table(&with(startup_table::MAGIC, rest));
            disk_header(&with(DISK_MAGIC, rest));
            // Slot header: the body as the first byte's lease length says, its checksum, then
            // whatever is left (the rest of the 4 KiB block).
            if let Some(&lease_len) = rest.first() {
                let body_len =
                    (1 + usize::from(lease_len) + 16 + 4 + 4 + 8 + 12 + 48).min(rest.len());
                let body = with(SLOT_MAGIC, &rest[..body_len]);
                let mut b = body.clone();
                b.extend_from_slice(&sha256(&body));
                b.extend_from_slice(&rest[body_len..]);
                slot(&b);
            }
            // Host root record: the blob length from the first two bytes (cut to what is
            // there), the blob, its checksum, then the rest.
            if rest.len() >= 2 {
                let claimed = u16::from_be_bytes([rest[0], rest[1]]);
                let len = usize::from(claimed).min(rest.len() - 2);
                let blob = &rest[2..2 + len];
                let mut b = disk_layout::encode_root(blob, &sha256);
                b.extend_from_slice(&rest[2 + len..]);
                root(&b);
                // The same record with the uncut length in its length field (may lie).
                b[8..12].copy_from_slice(&u32::from(claimed).to_be_bytes());
                root(&b);
            }
        }
    }
});

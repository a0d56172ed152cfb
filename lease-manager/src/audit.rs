//! The audit log's hash chain, pure. Each entry's hash covers the previous entry's hash and
//! every field of the entry, length-prefixed, so rewriting, removing or reordering an entry
//! breaks every later link. The store appends entries in the same transaction as the state
//! change they describe ([`crate::store::Store::commit`]).

use lm_api::{AuditEntry, AuditVerification, LeaseId, Name};
use sha2::{Digest, Sha256};

/// The `prev` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// An entry before it is numbered and chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDraft {
    pub actor: String,
    pub action: &'static str,
    pub lease: Option<LeaseId>,
    pub server: Option<String>,
    pub tenant: Option<Name>,
    pub detail: String,
}

/// The end of the chain: the last sequence number and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub seq: u64,
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

impl Default for Head {
    fn default() -> Self {
        Self {
            seq: 0,
            hash: GENESIS,
        }
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(&s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes of hex"))
    }
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn opt(h: &mut Sha256, v: Option<String>) {
    match v {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            field(h, s.as_bytes());
        }
    }
}

/// The hash of an entry with these contents.
pub fn entry_hash(e: &AuditEntry, prev: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"lease-appliance audit v1");
    h.update(prev);
    h.update(e.seq.to_be_bytes());
    h.update(e.at_ms.to_be_bytes());
    field(&mut h, e.actor.as_bytes());
    field(&mut h, e.action.as_bytes());
    opt(&mut h, e.lease.map(|l| l.to_string()));
    opt(&mut h, e.server.clone());
    opt(&mut h, e.tenant.as_ref().map(|t| t.to_string()));
    field(&mut h, e.detail.as_bytes());
    h.finalize().into()
}

/// Numbers and chains `draft` after `head`; returns the entry and the new head.
pub fn chain(head: Head, at_ms: u64, draft: AuditDraft) -> (AuditEntry, Head) {
    let mut e = AuditEntry {
        seq: head.seq + 1,
        at_ms,
        actor: draft.actor,
        action: draft.action.to_string(),
        lease: draft.lease,
        server: draft.server,
        tenant: draft.tenant,
        detail: draft.detail,
        prev: hex::encode(head.hash),
        hash: String::new(),
    };
    let hash = entry_hash(&e, &head.hash);
    e.hash = hex::encode(hash);
    (
        e,
        Head {
            seq: head.seq + 1,
            hash,
        },
    )
}

/// Checks a whole log (in order) and says where it first breaks.
pub fn verify<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> AuditVerification {
    let mut head = Head::default();
    let mut n = 0;
    for e in entries {
        n += 1;
        let broken = |why: String| AuditVerification {
            entries: n,
            head: hex::encode(head.hash),
            broken: Some(format!("entry {}: {why}", e.seq)),
        };
        if e.seq != head.seq + 1 {
            return broken(format!(
                "sequence number {} follows {} (an entry was removed or reordered)",
                e.seq, head.seq
            ));
        }
        if e.prev != hex::encode(head.hash) {
            return broken("its prev does not match the hash of the entry before".into());
        }
        let hash = entry_hash(e, &head.hash);
        if e.hash != hex::encode(hash) {
            return broken("its contents do not match its hash (the entry was rewritten)".into());
        }
        head = Head { seq: e.seq, hash };
    }
    AuditVerification {
        entries: n,
        head: hex::encode(head.hash),
        broken: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(i: u32) -> AuditDraft {
        AuditDraft {
            actor: "lm".into(),
            action: "lease.state",
            lease: Some(LeaseId::from_random(u64::from(i))),
            server: Some(format!("vm{i}")),
            tenant: None,
            detail: format!("step {i}"),
        }
    }

    fn log(n: u32) -> Vec<AuditEntry> {
        let mut head = Head::default();
        (0..n)
            .map(|i| {
                let (e, h) = chain(head, 1000 + u64::from(i), draft(i));
                head = h;
                e
            })
            .collect()
    }

    #[test]
    fn intact_log_verifies() {
        let l = log(5);
        let v = verify(&l);
        assert_eq!(v.broken, None);
        assert_eq!(v.entries, 5);
        assert_eq!(v.head, l[4].hash);
    }

    #[test]
    fn every_kind_of_tampering_is_detected() {
        let l = log(5);
        let mut rewritten = l.clone();
        rewritten[2].detail = "nothing happened".into();
        assert!(verify(&rewritten).broken.unwrap().contains("entry 3"));

        let mut removed = l.clone();
        removed.remove(1);
        assert!(verify(&removed).broken.unwrap().contains("removed"));

        let mut swapped = l.clone();
        swapped.swap(1, 2);
        assert!(verify(&swapped).broken.is_some());

        // Rewriting an entry and recomputing its own hash still breaks the next link.
        let mut rehashed = l.clone();
        rehashed[2].actor = "operator:mallory".into();
        let prev: [u8; 32] = hex::decode(&rehashed[2].prev).unwrap().try_into().unwrap();
        rehashed[2].hash = hex::encode(entry_hash(&rehashed[2], &prev));
        assert!(verify(&rehashed).broken.unwrap().contains("entry 4"));

        // Moving a field's bytes into its neighbour changes the hash (length prefixes).
        let mut shifted = l.clone();
        shifted[0].actor = "lml".into();
        shifted[0].action = "ease.state".into();
        assert!(verify(&shifted).broken.is_some());
    }

    #[test]
    fn head_round_trips_as_json() {
        let h = Head {
            seq: 3,
            hash: [7; 32],
        };
        let j = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Head>(&j).unwrap(), h);
        assert!(serde_json::from_str::<Head>(r#"{"seq":1,"hash":"00"}"#).is_err());
    }
}

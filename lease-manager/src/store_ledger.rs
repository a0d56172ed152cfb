//! The ledger's durable side: one sled transaction per [`Tx`] over the trees `servers`,
//! `leases` (id -> JSON), `tenants` and `operators` (name -> JSON), `tokens` (SHA-256 of the token, hex ->
//! JSON), `revoked` (serial -> JSON), `audit` (sequence, big-endian -> entry JSON) and `meta`
//! (`audit_head`). A transaction either lands whole or not at all; the caller
//! flushes before anything is answered or acted on.

use lm_api::AuditEntry;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::audit::{self, Head};
use crate::ledger::{LeaseRecord, Ledger, Revocation, TenantRecord, TokenRecord, Tx};
use crate::store::{Store, StoreError, db_err};

/// The trees of the ledger.
#[derive(Debug, Clone)]
pub(crate) struct LedgerTrees {
    leases: sled::Tree,
    tenants: sled::Tree,
    operators: sled::Tree,
    tokens: sled::Tree,
    revoked: sled::Tree,
    audit: sled::Tree,
    meta: sled::Tree,
}

const AUDIT_HEAD: &[u8] = b"audit_head";

impl LedgerTrees {
    pub(crate) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let t = |name: &'static str| db.open_tree(name).map_err(db_err("open tree"));
        Ok(Self {
            leases: t("leases")?,
            tenants: t("tenants")?,
            operators: t("operators")?,
            tokens: t("tokens")?,
            revoked: t("revoked")?,
            audit: t("audit")?,
            meta: t("meta")?,
        })
    }
}

fn corrupt(what: &'static str) -> impl FnOnce(serde_json::Error) -> StoreError {
    move |source| StoreError::Corrupt { what, source }
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Serializing our own plain records cannot fail (no maps with non-string keys).
    serde_json::to_vec(v).unwrap_or_default()
}

fn read_all<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    what: &'static str,
) -> Result<Vec<T>, StoreError> {
    tree.iter()
        .map(|kv| {
            let (_, v) = kv.map_err(db_err("read"))?;
            serde_json::from_slice(&v).map_err(corrupt(what))
        })
        .collect()
}

impl Store {
    /// Loads the whole ledger (servers, leases, tenants, revoked serials).
    pub fn load_ledger(&self) -> Result<Ledger, StoreError> {
        let mut l = Ledger::default();
        for rec in self.servers()? {
            l.by_name.insert(rec.name.clone(), rec.mac);
            l.servers.insert(rec.mac, rec);
        }
        for rec in read_all::<LeaseRecord>(&self.ledger.leases, "lease")? {
            l.leases.insert(rec.id, rec);
        }
        // A lease's servers are the servers that name it (in name order).
        let mut members: Vec<(&String, lm_api::MacAddr, lm_api::LeaseId)> = l
            .servers
            .values()
            .filter_map(|s| s.lease.map(|id| (&s.name, s.mac, id)))
            .collect();
        members.sort();
        let members: Vec<_> = members.into_iter().map(|(_, m, id)| (m, id)).collect();
        for (mac, id) in members {
            if let Some(lease) = l.leases.get_mut(&id) {
                lease.servers.push(mac);
            }
        }
        for rec in read_all::<TenantRecord>(&self.ledger.tenants, "tenant")? {
            l.tenants.insert(rec.name.clone(), rec);
        }
        for rec in read_all::<TenantRecord>(&self.ledger.operators, "operator")? {
            l.operators.insert(rec.name.clone(), rec);
        }
        for r in read_all::<Revocation>(&self.ledger.revoked, "revocation")? {
            l.revoked.insert(r.serial);
        }
        Ok(l)
    }

    /// Writes a transaction atomically (not yet flushed) and returns the audit entries it
    /// appended, numbered and chained.
    pub fn commit(&self, tx: &Tx, now_ms: u64) -> Result<Vec<AuditEntry>, StoreError> {
        let t = &self.ledger;
        let trees = (
            &self.servers,
            &t.leases,
            &t.tenants,
            &t.operators,
            &t.tokens,
            &t.revoked,
            &t.audit,
            &t.meta,
        );
        let res = trees.transaction(
            |(servers, leases, tenants, operators, tokens, revoked, audit, meta)| {
                for mac in &tx.removed_servers {
                    servers.remove(&mac.octets())?;
                }
                for rec in tx.servers.values() {
                    servers.insert(&rec.mac.octets(), json(rec))?;
                }
                for rec in tx.leases.values() {
                    leases.insert(&rec.id.get().to_be_bytes(), json(rec))?;
                }
                for rec in tx.tenants.values() {
                    tenants.insert(rec.name.as_str().as_bytes(), json(rec))?;
                }
                for rec in tx.operators.values() {
                    operators.insert(rec.name.as_str().as_bytes(), json(rec))?;
                }
                for (k, rec) in &tx.tokens {
                    tokens.insert(k.as_bytes(), json(rec))?;
                }
                for r in &tx.revocations {
                    revoked.insert(r.serial.as_bytes(), json(r))?;
                }
                let mut head: Head = match meta.get(AUDIT_HEAD)? {
                    Some(v) => serde_json::from_slice(&v)
                        .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?,
                    None => Head::default(),
                };
                let mut out = Vec::with_capacity(tx.audit.len());
                for d in &tx.audit {
                    let (entry, next) = audit::chain(head, now_ms, d.clone());
                    audit.insert(&entry.seq.to_be_bytes(), json(&entry))?;
                    head = next;
                    out.push(entry);
                }
                if !tx.audit.is_empty() {
                    meta.insert(AUDIT_HEAD, json(&head))?;
                }
                Ok(out)
            },
        );
        res.map_err(|e| match e {
            TransactionError::Abort(why) => StoreError::Db {
                op: "commit",
                source: sled::Error::Unsupported(format!("corrupt audit head: {why}")),
            },
            TransactionError::Storage(source) => StoreError::Db {
                op: "commit",
                source,
            },
        })
    }

    /// One token record by its key.
    pub fn token(&self, key: &str) -> Result<Option<TokenRecord>, StoreError> {
        match self
            .ledger
            .tokens
            .get(key.as_bytes())
            .map_err(db_err("read token"))?
        {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(corrupt("token"))?)),
            None => Ok(None),
        }
    }

    /// Every revocation (for the CRL).
    pub fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        read_all(&self.ledger.revoked, "revocation")
    }

    /// Audit entries with `seq >= from`, at most `limit`.
    pub fn audit(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.ledger
            .audit
            .range(from.to_be_bytes()..)
            .take(limit)
            .map(|kv| {
                let (_, v) = kv.map_err(db_err("read audit"))?;
                serde_json::from_slice(&v).map_err(corrupt("audit"))
            })
            .collect()
    }

    /// Rewrites one audit entry in place, bypassing the chain: only for the tamper test.
    #[cfg(test)]
    pub(crate) fn tamper_audit(&self, e: &AuditEntry) {
        self.ledger
            .audit
            .insert(e.seq.to_be_bytes(), json(e))
            .unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditDraft;

    fn draft(n: u32) -> AuditDraft {
        AuditDraft {
            actor: "test".into(),
            action: "lease.state",
            lease: None,
            server: Some(format!("s{n}")),
            tenant: None,
            detail: format!("step {n}"),
        }
    }

    #[test]
    fn audit_chain_spans_transactions_and_reopens_and_tampering_shows() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            for n in 0..3 {
                let tx = Tx {
                    audit: vec![draft(2 * n), draft(2 * n + 1)],
                    ..Tx::default()
                };
                let out = s.commit(&tx, 1000 + u64::from(n)).unwrap();
                assert_eq!(out.len(), 2);
            }
            s.flush().unwrap();
        }
        let s = Store::reopen(dir.path()).unwrap();
        let out = s
            .commit(
                &Tx {
                    audit: vec![draft(9)],
                    ..Tx::default()
                },
                2000,
            )
            .unwrap();
        assert_eq!(out[0].seq, 7, "the chain continues after a reopen");
        let all = s.audit(1, 100).unwrap();
        assert_eq!(all.len(), 7);
        assert_eq!(audit::verify(&all).broken, None);
        assert_eq!(
            s.audit(5, 2)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>(),
            [5, 6]
        );
        let mut e = all[3].clone();
        e.detail = "nothing to see".into();
        s.tamper_audit(&e);
        let v = audit::verify(&s.audit(1, 100).unwrap());
        assert!(v.broken.unwrap().contains("entry 4"));
    }
}

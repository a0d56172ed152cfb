//! The DHCP server's lease store on sled: `put` inserts, `flush` fsyncs once per batch (the
//! DHCP shell calls it before sending any ACK of the batch).

use std::net::Ipv4Addr;

use pxe::dhcp::{Lease, LeaseStore, StoreError, StoreOp};

use crate::store::Store;

/// Leases in the `dhcp_leases` tree, keyed by address.
#[derive(Debug, Clone)]
pub struct SledLeaseStore {
    store: Store,
}

impl SledLeaseStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn backend(
    op: StoreOp,
    address: Option<Ipv4Addr>,
    err: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Backend {
        op,
        address,
        source: Box::new(err),
    }
}

impl LeaseStore for SledLeaseStore {
    fn load_all(&self) -> Result<Vec<Lease>, StoreError> {
        let mut out = Vec::new();
        for kv in self.store.lease_tree().iter() {
            let (k, v) = kv.map_err(|x| backend(StoreOp::Load, None, x))?;
            let address = <[u8; 4]>::try_from(k.as_ref()).ok().map(Ipv4Addr::from);
            out.push(serde_json::from_slice(&v).map_err(|x| StoreError::Corrupt {
                address,
                detail: x.to_string(),
            })?);
        }
        Ok(out)
    }

    fn put(&self, lease: &Lease) -> Result<(), StoreError> {
        let a = Some(lease.address);
        let v = serde_json::to_vec(lease).map_err(|x| backend(StoreOp::Put, a, x))?;
        self.store
            .lease_tree()
            .insert(lease.address.octets(), v)
            .map_err(|x| backend(StoreOp::Put, a, x))?;
        Ok(())
    }

    fn remove(&self, addr: Ipv4Addr) -> Result<(), StoreError> {
        self.store
            .lease_tree()
            .remove(addr.octets())
            .map_err(|x| backend(StoreOp::Remove, Some(addr), x))?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.store
            .flush()
            .map_err(|x| backend(StoreOp::Flush, None, x))
    }
}

//! The gateway's two backends, as traits with the real implementation and one shared fake:
//! [`LmSource`] (the Lease Manager: leases and CRL; real: [`crate::lm::Lm`]) and [`WgPeers`]
//! (the WireGuard node's peer list; real: `wg_tunnel::NodeHandle`, see `tunnel.rs`).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::Mutex;

use lm_api::{LeaseId, LeaseView};
use po_api::WgPublicKey;

/// A boxed future (the traits are used as `dyn`).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the gateway asks the Lease Manager. Errors are sentences (the LM could not be asked).
pub trait LmSource: Send + Sync {
    /// The lease as the LM shows it to this tenant; `None` when the LM does not know it for
    /// this tenant (404).
    fn lease(&self, id: LeaseId) -> BoxFut<'_, Result<Option<LeaseView>, String>>;
    /// This tenant's leases.
    fn leases(&self) -> BoxFut<'_, Result<Vec<LeaseView>, String>>;
    /// The CRL (DER).
    fn crl(&self) -> BoxFut<'_, Result<Vec<u8>, String>>;
}

impl LmSource for crate::lm::Lm {
    fn lease(&self, id: LeaseId) -> BoxFut<'_, Result<Option<LeaseView>, String>> {
        Box::pin(async move {
            match crate::lm::Lm::lease(self, id).await {
                Ok(v) => Ok(Some(v)),
                Err(e) if e.status() == Some(404) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn leases(&self) -> BoxFut<'_, Result<Vec<LeaseView>, String>> {
        Box::pin(async move { crate::lm::Lm::leases(self).await.map_err(|e| e.to_string()) })
    }

    fn crl(&self) -> BoxFut<'_, Result<Vec<u8>, String>> {
        Box::pin(async move { self.crl_der().await.map_err(|e| format!("{e:#}")) })
    }
}

/// The WireGuard node's peers: add (the peer may send from `address` only, and the gateway
/// routes `address` to it) and remove.
pub trait WgPeers: Send + Sync {
    fn add_peer(&self, key: &WgPublicKey, address: Ipv4Addr) -> Result<(), String>;
    fn remove_peer(&self, key: &WgPublicKey) -> Result<(), String>;
}

/// The shared fake of both backends for tests: leases and a CRL set by the test, and a peer
/// list in memory.
#[derive(Debug, Default)]
pub struct FakeLm {
    pub leases: Mutex<BTreeMap<LeaseId, LeaseView>>,
    pub crl: Mutex<Option<Vec<u8>>>,
    /// When set, every call fails with this sentence (the LM is unreachable).
    pub down: Mutex<Option<String>>,
}

impl FakeLm {
    fn check_up(&self) -> Result<(), String> {
        match self.down.lock().map(|d| d.clone()) {
            Ok(Some(why)) => Err(why),
            _ => Ok(()),
        }
    }

    /// Sets (or replaces) a lease.
    pub fn put(&self, v: LeaseView) {
        if let Ok(mut l) = self.leases.lock() {
            l.insert(v.id, v);
        }
    }
}

impl LmSource for FakeLm {
    fn lease(&self, id: LeaseId) -> BoxFut<'_, Result<Option<LeaseView>, String>> {
        Box::pin(async move {
            self.check_up()?;
            Ok(self.leases.lock().ok().and_then(|l| l.get(&id).cloned()))
        })
    }

    fn leases(&self) -> BoxFut<'_, Result<Vec<LeaseView>, String>> {
        Box::pin(async move {
            self.check_up()?;
            Ok(self
                .leases
                .lock()
                .map(|l| l.values().cloned().collect())
                .unwrap_or_default())
        })
    }

    fn crl(&self) -> BoxFut<'_, Result<Vec<u8>, String>> {
        Box::pin(async move {
            self.check_up()?;
            self.crl
                .lock()
                .ok()
                .and_then(|c| c.clone())
                .ok_or_else(|| "no CRL".to_string())
        })
    }
}

/// The fake WireGuard peer list.
#[derive(Debug, Default)]
pub struct FakeWg {
    pub peers: Mutex<BTreeMap<WgPublicKey, Ipv4Addr>>,
}

impl WgPeers for FakeWg {
    fn add_peer(&self, key: &WgPublicKey, address: Ipv4Addr) -> Result<(), String> {
        let mut p = self.peers.lock().map_err(|_| "poisoned".to_string())?;
        // As the real node: a key or an address configured twice is refused.
        if p.contains_key(key) || p.values().any(|a| *a == address) {
            return Err(format!(
                "peer {key} or address {address} is configured already"
            ));
        }
        p.insert(*key, address);
        Ok(())
    }

    fn remove_peer(&self, key: &WgPublicKey) -> Result<(), String> {
        self.peers
            .lock()
            .map_err(|_| "poisoned".to_string())?
            .remove(key);
        Ok(())
    }
}

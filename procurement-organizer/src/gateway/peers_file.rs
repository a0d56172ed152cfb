//! The peer table's file, `<state_dir>/gateway/peers.json` (mode 0600, replaced atomically):
//! written before a registration is answered or a removal is final, read at start. IO.

use std::path::{Path, PathBuf};

use super::identity::gateway_dir;
use super::peers::PeerTable;
use crate::config::GatewayConfig;
use crate::files;

/// The file's path.
pub fn path(state_dir: &Path) -> PathBuf {
    gateway_dir(state_dir).join("peers.json")
}

/// The table on disk (empty if there is none), checked against the configuration.
pub fn load(state_dir: &Path, cfg: &GatewayConfig) -> anyhow::Result<PeerTable> {
    let p = path(state_dir);
    match files::read_optional(&p)? {
        Some(b) => {
            let t: PeerTable = serde_json::from_slice(&b).map_err(|e| {
                anyhow::anyhow!("{} is not the gateway's peer table: {e}", p.display())
            })?;
            t.check(cfg.tunnel_network, cfg.tunnel_address)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            Ok(t)
        }
        None => Ok(PeerTable::new(cfg.tunnel_network, cfg.tunnel_address)),
    }
}

/// Writes the table durably.
pub fn save(state_dir: &Path, t: &PeerTable) -> anyhow::Result<()> {
    files::private_dir(&gateway_dir(state_dir))?;
    let bytes = serde_json::to_vec_pretty(t)?;
    files::replace_private(&path(state_dir), &bytes)
}

//! The tenant's procurement organizer: asks the Lease Manager for capacity, keeps the record of
//! the leases it asked for (the tenant's approval list), seals boot images, and runs the
//! tenant gateway (WireGuard peer registration, key service, image store, lease watcher).
//!
//! IO stance: the decisions are pure ([`gateway::approval`], [`gateway::peers`],
//! [`gateway::range`], [`record::Record`], [`config`] validation, [`render`]); the CLI commands
//! and the gateway's services are thin shells around them.

pub mod cmd_lease;
pub mod config;
pub mod files;
pub mod gateway;
pub mod images;
pub mod keystore;
pub mod lm;
pub mod record;
pub mod render;
pub mod text;

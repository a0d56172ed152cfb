//! The tenant gateway (`gateway run`): registration service on the data-centre address, key
//! service and image store behind the tunnel, and the watcher that follows the Lease Manager.

pub mod approval;
pub mod config_sync;
pub mod http;
pub mod identity;
pub mod ipsec;
pub mod peers;
pub mod peers_file;
pub mod range;
pub mod revoked_sas;
pub mod run;
pub mod service;
pub mod source;
pub mod swanctl;
pub mod tls;
pub mod trust;
pub mod tunnel;

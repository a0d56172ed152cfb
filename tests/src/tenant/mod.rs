//! The tenant's side of the lab: the gateway's namespace on the bridge, the organizer, the
//! lease server as an agent process in a namespace or as a QEMU VM, and small helpers. Used by
//! the tenant tests and by `lab demo`. IO.

pub mod helpers;
pub mod ipsec_wire;
pub mod key_scan;
pub mod world;

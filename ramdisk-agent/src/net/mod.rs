//! Networking of the agent's IO shell: interface configuration ioctls, the boot NIC, and the
//! DHCP client's packet socket. Does IO.

pub mod dhcp;
/// Interface configuration ioctls live in wg-tunnel (shared with the TUN device's set-up).
pub use wg_tunnel::ifconfig;
pub mod link;

//! Networking of the agent's IO shell: interface configuration ioctls, the boot NIC, and the
//! DHCP client's packet socket. Does IO.

pub mod dhcp;
pub mod ifconfig;
pub mod link;

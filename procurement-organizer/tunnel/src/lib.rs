//! Userspace WireGuard over a TUN device (the home of boringtun), for the tenant gateway and the agent.

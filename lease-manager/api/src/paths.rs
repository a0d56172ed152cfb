//! URL paths of the LM's endpoints. One place, so clients and server cannot drift apart.

/// Agent -> LM (HTTPS, LM CA pinned in the initramfs): the agent is up and reports its hardware.
pub const AGENT_HELLO: &str = "/v1/agent/hello";
/// Agent -> LM (HTTPS): a phase report (progress or failure) from the agent.
pub const AGENT_REPORT: &str = "/v1/agent/report";
/// Agent -> LM (HTTPS, no client certificate; the single-use token authenticates): enrollment.
pub const AGENT_ENROLL: &str = "/v1/agent/enroll";
/// Agent -> LM (HTTPS, with the agent certificate once enrolled): heartbeat; the answer may
/// say release.
pub const AGENT_HEARTBEAT: &str = "/v1/agent/heartbeat";
/// Operator console -> LM (local admin socket): the server inventory.
pub const SERVERS: &str = "/v1/servers";
/// Plain-HTTP boot artifacts served to iPXE, per host so every fetch is attributed:
/// `/boot/{mac}.ipxe`, `/boot/{mac}/vmlinuz`, `/boot/{mac}/initrd` (MAC written `52-54-00-12-34-56`).
pub const BOOT_PREFIX: &str = "/boot/";

//! The ramdisk agent's IPsec tunnel (issue 6), third slice: the IO shell between agent-ike's
//! pure IKEv2 initiator and agent-esp's userspace ESP endpoint.
//!
//! - [`establish`]: IKE_SA_INIT on UDP 500, then (RFC 7296 2.23: the initiator may always
//!   float) IKE_AUTH on UDP 4500 behind the non-ESP marker; retransmission per the state
//!   machines' timers; time from a [`Clock`], randomness from an [`agent_ike::Entropy`].
//! - [`Tunnel`]: the child SA installed into an [`agent_esp::io::Endpoint`] on the same
//!   UDP 4500 socket, a TUN device with the inner address and routes for the narrowed TSr.
//! - [`plan`] (pure, unit-tested): NAT/encapsulation decision, TS ranges to routes, the inner
//!   address check, the ESP SA pair from the child SA's SPIs and keys.
//!
//! - [`ike_life`]: the established IKE SA on its own thread: agent-ike's `IkeSa` fed from the
//!   endpoint's IKE channel, liveness checks both ways, child SA rekeying (ours on the ESP soft
//!   lifetime, the peer's answered) installed into the endpoint, IKE SA rekeying (ours on
//!   [`LifeConfig::ike_rekey`], the peer's answered; collisions per RFC 7296 2.8), deletes,
//!   [`LinkState`].
//!
//! Not here yet: NAT keepalives, IPv6, PFS on child rekeys.

pub mod clock;
pub mod error;
pub mod establish;
pub mod ike_life;
pub mod plan;
pub mod transport;
pub mod tunnel;

pub use clock::{Clock, SystemClock};
pub use error::TunnelError;
pub use establish::{Established, Handshake, IkeConfig, IkeSaInfo, InnerAddress, establish};
pub use ike_life::{LifeStats, LinkState};
pub use plan::{AfterSaInit, PlanError};
pub use transport::IkeTransport;
pub use tunnel::{LifeConfig, Tunnel, TunnelConfig, TunnelInfo};

//! The lease's tunnel to the tenant gateway, whichever the lease asked for: WireGuard
//! ([`AgentTunnel`]) or IPsec ([`IpsecWay`]). The transfer and the key service use it through
//! [`crate::transfer::Way`]; both bind every connection to the tunnel's device.

use std::time::Duration;

use crate::ipsec_way::IpsecWay;
use crate::transfer::Way;
use crate::tunnel::AgentTunnel;

/// The running tunnel.
#[derive(Debug)]
pub enum LeaseWay {
    Wireguard(Box<AgentTunnel>),
    Ipsec(Box<IpsecWay>),
}

impl LeaseWay {
    fn way(&self) -> &dyn Way {
        match self {
            Self::Wireguard(t) => t.as_ref(),
            Self::Ipsec(t) => t.as_ref(),
        }
    }

    /// What the phase report says about the tunnel beyond the handshake time.
    pub fn describe(&self) -> String {
        match self {
            Self::Wireguard(_) => "tunnel=wireguard".into(),
            Self::Ipsec(t) => format!("tunnel=ipsec {}", t.describe()),
        }
    }

    /// Stops the tunnel; its device goes with it.
    pub fn shutdown(self) {
        match self {
            Self::Wireguard(t) => (*t).shutdown(),
            Self::Ipsec(t) => (*t).shutdown(),
        }
    }
}

impl Way for LeaseWay {
    fn ensure_up(&self, timeout: Duration) -> anyhow::Result<Duration> {
        self.way().ensure_up(timeout)
    }

    fn restart(&self) -> anyhow::Result<()> {
        self.way().restart()
    }

    fn device(&self) -> Option<&str> {
        self.way().device()
    }
}

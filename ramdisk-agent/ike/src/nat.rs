//! NAT detection data (RFC 7296 2.23): SHA-1(SPIi | SPIr | IP address | port).

use std::net::SocketAddr;

use ring::digest;

pub fn nat_detection_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&spi_i.to_be_bytes());
    ctx.update(&spi_r.to_be_bytes());
    match addr {
        SocketAddr::V4(a) => ctx.update(&a.ip().octets()),
        SocketAddr::V6(a) => ctx.update(&a.ip().octets()),
    }
    ctx.update(&addr.port().to_be_bytes());
    ctx.finish().as_ref().to_vec()
}

/// What the responder's NAT detection notifies in its IKE_SA_INIT response say (RFC 7296
/// 2.23). Hashes use the SPIs of the response's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatDetection {
    /// The responder sent both notifies (it supports NAT traversal).
    pub peer_supports: bool,
    /// Its NAT_DETECTION_DESTINATION_IP is not the hash of our address: a NAT is in front of us.
    pub local_behind_nat: bool,
    /// None of its NAT_DETECTION_SOURCE_IP is the hash of its address as we see it: a NAT is in
    /// front of it (strongSwan with kernel-libipsec fakes this to force UDP encapsulation).
    pub remote_behind_nat: bool,
}

impl NatDetection {
    /// Either side is behind a NAT: IKE moves to UDP 4500 and ESP is UDP-encapsulated
    /// (RFC 7296 2.23; the port switch is not implemented yet).
    pub fn detected(&self) -> bool {
        self.local_behind_nat || self.remote_behind_nat
    }

    /// Compares the responder's notifies (`sources`, `destinations`: their data) with the
    /// hashes of the addresses we used.
    pub fn evaluate(
        spi_i: u64,
        spi_r: u64,
        local: SocketAddr,
        remote: SocketAddr,
        sources: &[&[u8]],
        destinations: &[&[u8]],
    ) -> NatDetection {
        if sources.is_empty() || destinations.is_empty() {
            return NatDetection::default();
        }
        let ours = nat_detection_hash(spi_i, spi_r, local);
        let theirs = nat_detection_hash(spi_i, spi_r, remote);
        NatDetection {
            peer_supports: true,
            local_behind_nat: !destinations.contains(&ours.as_slice()),
            remote_behind_nat: !sources.contains(&theirs.as_slice()),
        }
    }
}

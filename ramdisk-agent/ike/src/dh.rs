//! Diffie-Hellman for IKEv2 through ring's `agreement`: group 31 (Curve25519, RFC 8031) and
//! group 19 (NIST P-256, RFC 5903). Key pairs come from ring's system randomness: ring seals
//! its `SecureRandom` trait, so a caller's seeded RNG cannot drive them; tests that need a
//! fixed exchange use both sides' real keys instead.

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use ring::rand::SystemRandom;
use zeroize::Zeroizing;

use crate::error::CryptoError;

/// The DH groups this crate offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// 31: Curve25519, 32-byte public values.
    Curve25519,
    /// 19: 256-bit random ECP group, public value x | y (64 bytes).
    Ecp256,
}

impl DhGroup {
    pub fn number(self) -> u16 {
        match self {
            DhGroup::Curve25519 => 31,
            DhGroup::Ecp256 => 19,
        }
    }
    pub fn from_number(n: u16) -> Option<DhGroup> {
        match n {
            31 => Some(DhGroup::Curve25519),
            19 => Some(DhGroup::Ecp256),
            _ => None,
        }
    }
    /// Length of the KE payload's key exchange data.
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Curve25519 => 32,
            DhGroup::Ecp256 => 64,
        }
    }
    fn algorithm(self) -> &'static agreement::Algorithm {
        match self {
            DhGroup::Curve25519 => &agreement::X25519,
            DhGroup::Ecp256 => &agreement::ECDH_P256,
        }
    }
}

/// Our half of one exchange: the private key (used once) and the KE data we send.
pub struct DhPrivate {
    group: DhGroup,
    key: EphemeralPrivateKey,
    public: Vec<u8>,
}

impl std::fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhPrivate")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl DhPrivate {
    /// A fresh key pair from the system's randomness.
    pub fn generate(group: DhGroup) -> Result<DhPrivate, CryptoError> {
        let fail = CryptoError::KeyGeneration {
            group: group.number(),
        };
        let key = EphemeralPrivateKey::generate(group.algorithm(), &SystemRandom::new())
            .map_err(|_| fail.clone())?;
        let pk = key.compute_public_key().map_err(|_| fail.clone())?;
        let public = match group {
            DhGroup::Curve25519 => pk.as_ref().to_vec(),
            // ring gives the SEC1 uncompressed point 04 | x | y; IKE carries x | y.
            DhGroup::Ecp256 => pk.as_ref().get(1..).ok_or(fail)?.to_vec(),
        };
        Ok(DhPrivate { group, key, public })
    }

    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The key exchange data for our KE payload.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// g^ir from the peer's KE data: the X25519 output, or the P-256 point's x coordinate.
    pub fn agree(self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let group = self.group;
        let bad = CryptoError::BadPeerPublic {
            group: group.number(),
            len: peer.len(),
        };
        if peer.len() != group.public_len() {
            return Err(bad);
        }
        let encoded: Vec<u8> = match group {
            DhGroup::Curve25519 => peer.to_vec(),
            DhGroup::Ecp256 => [&[4u8][..], peer].concat(),
        };
        let peer = UnparsedPublicKey::new(group.algorithm(), encoded);
        agreement::agree_ephemeral(self.key, &peer, |s| Zeroizing::new(s.to_vec())).map_err(|_| bad)
    }
}

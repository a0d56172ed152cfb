//! The IKEv2 key schedule with PRF_HMAC_SHA2_256 and AES-GCM-16-256 (RFC 7296 2.13, 2.14;
//! RFC 5282 7.1: no integrity keys, each SK_e is 32 key bytes and a 4-byte salt). Pure.

use ring::hmac;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::CryptoError;
use crate::sk::{KEY_LEN, SALT_LEN, SkKey};

/// Output size of PRF_HMAC_SHA2_256, and so of SK_d, SK_pi and SK_pr.
pub const PRF_LEN: usize = 32;

/// prf(K, S) = HMAC-SHA-256.
pub fn prf(key: &[u8], data: &[&[u8]]) -> [u8; PRF_LEN] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&k);
    for d in data {
        ctx.update(d);
    }
    let mut out = [0u8; PRF_LEN];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// prf+(K, S) = T1 | T2 | ..., T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n), n <= 255.
pub fn prf_plus(key: &[u8], seed: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if len > 255 * PRF_LEN {
        return Err(CryptoError::PrfPlusTooLong(len));
    }
    let mut out = Zeroizing::new(Vec::with_capacity(len + PRF_LEN));
    let mut prev: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    let mut n: u8 = 1;
    while out.len() < len {
        let t = prf(key, &[&prev, seed, &[n]]);
        out.extend_from_slice(&t);
        *prev = t.to_vec();
        n = n.wrapping_add(1);
    }
    out.truncate(len);
    Ok(out)
}

/// The keys of an IKE SA (SK_ai/SK_ar are empty with an AEAD and not represented).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct IkeKeys {
    pub sk_d: [u8; PRF_LEN],
    pub sk_ei: SkKey,
    pub sk_er: SkKey,
    pub sk_pi: [u8; PRF_LEN],
    pub sk_pr: [u8; PRF_LEN],
}

impl std::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IkeKeys(redacted)")
    }
}

/// Bytes of key material prf+ must produce: SK_d, SK_ei, SK_er, SK_pi, SK_pr.
pub const KEYMAT_LEN: usize = PRF_LEN + 2 * (KEY_LEN + SALT_LEN) + 2 * PRF_LEN;

/// SKEYSEED = prf(Ni | Nr, g^ir); {SK_d | SK_ei | SK_er | SK_pi | SK_pr} =
/// prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
pub fn derive(
    ni: &[u8],
    nr: &[u8],
    shared: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> Result<IkeKeys, CryptoError> {
    let nonces = Zeroizing::new([ni, nr].concat());
    let skeyseed = Zeroizing::new(prf(&nonces, &[shared]));
    expand(&skeyseed[..], &nonces, spi_i, spi_r)
}

/// The keys of an IKE SA that replaces one by CREATE_CHILD_SA (RFC 7296 2.18): SKEYSEED =
/// prf(SK_d (old), g^ir (new) | Ni | Nr), expanded as in [`derive`] with the new SPIs (SPIi =
/// the rekey exchange's initiator's).
pub fn derive_rekeyed(
    old_sk_d: &[u8],
    shared: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> Result<IkeKeys, CryptoError> {
    let nonces = Zeroizing::new([ni, nr].concat());
    let skeyseed = Zeroizing::new(prf(old_sk_d, &[shared, ni, nr]));
    expand(&skeyseed[..], &nonces, spi_i, spi_r)
}

fn expand(skeyseed: &[u8], nonces: &[u8], spi_i: u64, spi_r: u64) -> Result<IkeKeys, CryptoError> {
    let seed = [nonces, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()].concat();
    let km = prf_plus(skeyseed, &seed, KEYMAT_LEN)?;
    let mut at = 0;
    let mut take = |n: usize| {
        let s = &km[at..at + n];
        at += n;
        s
    };
    let mut sk_d = [0u8; PRF_LEN];
    sk_d.copy_from_slice(take(PRF_LEN));
    let mut e = [0u8; KEY_LEN + SALT_LEN];
    e.copy_from_slice(take(KEY_LEN + SALT_LEN));
    let sk_ei = SkKey::from_bytes(&e);
    e.copy_from_slice(take(KEY_LEN + SALT_LEN));
    let sk_er = SkKey::from_bytes(&e);
    e.zeroize();
    let mut sk_pi = [0u8; PRF_LEN];
    sk_pi.copy_from_slice(take(PRF_LEN));
    let mut sk_pr = [0u8; PRF_LEN];
    sk_pr.copy_from_slice(take(PRF_LEN));
    Ok(IkeKeys {
        sk_d,
        sk_ei,
        sk_er,
        sk_pi,
        sk_pr,
    })
}

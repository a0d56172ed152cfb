//! The TPM operations the agent needs, over any `Transport`: each runs the pure builders and
//! parsers of `command`/`response` and flushes every transient object it created, on every
//! path.

use zeroize::Zeroizing;

use crate::blob::SealedBlob;
use crate::device::Transport;
use crate::error::TpmError;
use crate::spec::SECRET_LEN;
use crate::{command, rc, response};

/// The most random bytes one `get_random` call returns.
pub const MAX_RANDOM: usize = 64 * 1024;
/// Asked per TPM2_GetRandom (a TPM returns at most its largest digest size per call).
const RANDOM_CHUNK: u16 = 32;

/// A TPM 2.0 behind a transport.
#[derive(Debug)]
pub struct Tpm<T: Transport> {
    t: T,
}

impl<T: Transport> Tpm<T> {
    pub fn new(t: T) -> Self {
        Tpm { t }
    }

    /// The transport, e.g. to close it.
    pub fn into_inner(self) -> T {
        self.t
    }

    /// `n` random bytes from the TPM's RNG (at most `MAX_RANDOM`).
    pub fn get_random(&mut self, n: usize) -> Result<Vec<u8>, TpmError> {
        if n > MAX_RANDOM {
            return Err(TpmError::Request {
                what: format!("{n} random bytes asked, at most {MAX_RANDOM} per call"),
            });
        }
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let ask = u16::try_from(n - out.len()).map_or(RANDOM_CHUNK, |k| k.min(RANDOM_CHUNK));
            let resp = self.t.transact(&command::get_random(ask))?;
            let got = response::get_random(&resp, usize::from(ask))?;
            if got.is_empty() {
                return Err(TpmError::malformed("TPM2_GetRandom returned no bytes"));
            }
            out.extend_from_slice(&got);
        }
        Ok(out)
    }

    /// Seals a 32-byte secret under this TPM's owner-hierarchy storage primary key.
    pub fn seal(&mut self, secret: &[u8; 32]) -> Result<SealedBlob, TpmError> {
        let parent = self.create_primary()?;
        let created = self.transact_zeroized(&command::create(parent, secret));
        let created = created.and_then(|resp| response::create(&resp));
        let flushed = self.flush(parent);
        let created = created?;
        flushed?;
        Ok(SealedBlob {
            public: created.public,
            private: created.private,
        })
    }

    /// Unseals; a blob made by another TPM (other seeds) fails with TpmError::ForeignBlob.
    pub fn unseal(&mut self, blob: &SealedBlob) -> Result<Zeroizing<[u8; 32]>, TpmError> {
        let parent = self.create_primary()?;
        let loaded = command::load(parent, &blob.public, &blob.private)
            .and_then(|cmd| self.t.transact(&cmd))
            .and_then(|resp| response::load(&resp))
            .map_err(foreign);
        let flushed = self.flush(parent);
        let item = loaded?;
        if let Err(e) = flushed {
            let _ = self.flush(item);
            return Err(e);
        }
        let secret = self
            .transact_zeroized(&command::unseal(item))
            .and_then(|resp| response::unseal(&resp));
        let flushed = self.flush(item);
        let secret = secret?;
        flushed?;
        Ok(secret)
    }

    /// The transient object handles now loaded (seen through the resource manager: only
    /// this connection's). At most 64 are listed.
    pub fn transient_handles(&mut self) -> Result<Vec<u32>, TpmError> {
        let resp = self.t.transact(&command::get_transient_handles(64))?;
        Ok(response::get_handles(&resp)?.0)
    }

    fn create_primary(&mut self) -> Result<u32, TpmError> {
        let resp = self.t.transact(&command::create_primary())?;
        response::create_primary(&resp)
    }

    fn flush(&mut self, handle: u32) -> Result<(), TpmError> {
        let resp = self.t.transact(&command::flush_context(handle))?;
        response::flush_context(&resp)
    }

    /// A command holding the secret, or one whose response holds it: the response is
    /// zeroized when dropped.
    fn transact_zeroized(&mut self, cmd: &[u8]) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        self.t.transact(cmd).map(Zeroizing::new)
    }
}

/// TPM2_Load refusing a blob's integrity (an HMAC made with another TPM's seed, or altered
/// bytes) or the binding of its parts: not this TPM's blob.
fn foreign(e: TpmError) -> TpmError {
    match e {
        TpmError::Response { code, .. }
            if rc::is_format1(code, rc::INTEGRITY) || rc::is_format1(code, rc::BINDING) =>
        {
            TpmError::ForeignBlob { code }
        }
        other => other,
    }
}

const _: () = assert!(SECRET_LEN == 32);

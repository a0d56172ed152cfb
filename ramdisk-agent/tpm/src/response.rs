//! Parsing the TPM's responses to the commands of `command`. Pure, and total: any bytes give
//! a value or an error (truncated input, wrong tags or sizes, huge length fields, trailing
//! bytes, error codes), never a panic; nothing is allocated from a length field.

use zeroize::Zeroizing;

use crate::error::TpmError;
use crate::marshal::Reader;
use crate::rc;
use crate::spec::*;
use crate::template::check_sealed_public;

/// The parts of a freshly sealed object, as TPM2_Create returned them (without TPM2B sizes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    /// TPMT_PUBLIC of the sealed object.
    pub public: Vec<u8>,
    /// The contents of TPM2B_PRIVATE (integrity HMAC and encrypted sensitive area).
    pub private: Vec<u8>,
}

/// Checks the header; returns a reader after it. A non-zero response code is
/// `TpmError::Response` naming `command`.
fn header<'a>(
    resp: &'a [u8],
    command: &'static str,
    sessions: bool,
) -> Result<Reader<'a>, TpmError> {
    let what = command;
    let mut r = Reader::new(resp, what);
    let tag = r.u16("tag")?;
    let size = r.u32("responseSize")?;
    let code = r.u32("responseCode")?;
    if usize::try_from(size).ok() != Some(resp.len()) {
        return Err(TpmError::malformed(format!(
            "TPM2_{command} response: size field says {size} bytes, got {}",
            resp.len()
        )));
    }
    if code != 0 {
        if !matches!(tag, ST_NO_SESSIONS | ST_SESSIONS | ST_RSP_COMMAND) {
            return Err(TpmError::malformed(format!(
                "TPM2_{command} response: tag 0x{tag:04x} with code 0x{code:x}"
            )));
        }
        return Err(TpmError::Response {
            command,
            code,
            meaning: rc::describe(code),
        });
    }
    let want = if sessions {
        ST_SESSIONS
    } else {
        ST_NO_SESSIONS
    };
    if tag != want {
        return Err(TpmError::malformed(format!(
            "TPM2_{command} response: tag 0x{tag:04x}, expected 0x{want:04x}"
        )));
    }
    Ok(r)
}

/// For a response with sessions, after its handles: the parameter area as its own reader,
/// and a check that the rest is exactly one password session's response (empty nonce,
/// attributes, empty HMAC).
fn parameters<'a>(r: &mut Reader<'a>, command: &'static str) -> Result<Reader<'a>, TpmError> {
    let n = r.u32("parameterSize")?;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let params = Reader::new(r.bytes(n, "parameters")?, command);
    let nonce = r.tpm2b("session nonce")?;
    let _attributes = r.u8("session attributes")?;
    let hmac = r.tpm2b("session hmac")?;
    r.finish()?;
    if !nonce.is_empty() || !hmac.is_empty() {
        return Err(TpmError::malformed(format!(
            "TPM2_{command} response: a password session answered with a {}-byte nonce and a {}-byte HMAC",
            nonce.len(),
            hmac.len()
        )));
    }
    Ok(params)
}

fn transient(handle: u32, command: &'static str) -> Result<u32, TpmError> {
    if (handle >> 24) as u8 == HT_TRANSIENT {
        Ok(handle)
    } else {
        Err(TpmError::malformed(format!(
            "TPM2_{command} response: handle 0x{handle:08x} is not a transient object"
        )))
    }
}

/// The random bytes of a TPM2_GetRandom response (at most `requested`).
pub fn get_random(resp: &[u8], requested: usize) -> Result<Vec<u8>, TpmError> {
    let mut r = header(resp, "GetRandom", false)?;
    let bytes = r.tpm2b("randomBytes")?;
    r.finish()?;
    if bytes.len() > requested {
        return Err(TpmError::malformed(format!(
            "TPM2_GetRandom response: {} bytes for {requested} requested",
            bytes.len()
        )));
    }
    Ok(bytes.to_vec())
}

/// The handle of the primary object a TPM2_CreatePrimary response created.
pub fn create_primary(resp: &[u8]) -> Result<u32, TpmError> {
    const C: &str = "CreatePrimary";
    let mut r = header(resp, C, true)?;
    let handle = transient(r.u32("objectHandle")?, C)?;
    let mut p = parameters(&mut r, C)?;
    p.tpm2b("outPublic")?;
    p.tpm2b("creationData")?;
    p.tpm2b("creationHash")?;
    creation_ticket(&mut p)?;
    p.tpm2b("name")?;
    p.finish()?;
    Ok(handle)
}

fn creation_ticket(p: &mut Reader<'_>) -> Result<(), TpmError> {
    p.u16("creationTicket.tag")?;
    p.u32("creationTicket.hierarchy")?;
    p.tpm2b("creationTicket.digest")?;
    Ok(())
}

/// The sealed object of a TPM2_Create response; its public area must be our template.
pub fn create(resp: &[u8]) -> Result<CreatedObject, TpmError> {
    const C: &str = "Create";
    let mut r = header(resp, C, true)?;
    let mut p = parameters(&mut r, C)?;
    let private = p.tpm2b("outPrivate")?;
    let public = p.tpm2b("outPublic")?;
    p.tpm2b("creationData")?;
    p.tpm2b("creationHash")?;
    creation_ticket(&mut p)?;
    p.finish()?;
    if private.is_empty() {
        return Err(TpmError::malformed(
            "TPM2_Create response: empty outPrivate",
        ));
    }
    check_sealed_public(public)
        .map_err(|e| TpmError::malformed(format!("TPM2_Create response: {e}")))?;
    Ok(CreatedObject {
        public: public.to_vec(),
        private: private.to_vec(),
    })
}

/// The handle of the object a TPM2_Load response loaded.
pub fn load(resp: &[u8]) -> Result<u32, TpmError> {
    const C: &str = "Load";
    let mut r = header(resp, C, true)?;
    let handle = transient(r.u32("objectHandle")?, C)?;
    let mut p = parameters(&mut r, C)?;
    p.tpm2b("name")?;
    p.finish()?;
    Ok(handle)
}

/// The secret of a TPM2_Unseal response; it must be exactly 32 bytes.
pub fn unseal(resp: &[u8]) -> Result<Zeroizing<[u8; SECRET_LEN]>, TpmError> {
    const C: &str = "Unseal";
    let mut r = header(resp, C, true)?;
    let mut p = parameters(&mut r, C)?;
    let data = p.tpm2b("outData")?;
    p.finish()?;
    let mut out = Zeroizing::new([0u8; SECRET_LEN]);
    if data.len() != SECRET_LEN {
        return Err(TpmError::malformed(format!(
            "TPM2_Unseal response: {} bytes of sealed data, expected {SECRET_LEN}",
            data.len()
        )));
    }
    out.copy_from_slice(data);
    Ok(out)
}

/// A TPM2_FlushContext response (header only).
pub fn flush_context(resp: &[u8]) -> Result<(), TpmError> {
    header(resp, "FlushContext", false)?.finish()
}

/// The handles of a TPM2_GetCapability(TPM_CAP_HANDLES) response, and whether more exist.
pub fn get_handles(resp: &[u8]) -> Result<(Vec<u32>, bool), TpmError> {
    const C: &str = "GetCapability";
    let mut r = header(resp, C, false)?;
    let more = r.u8("moreData")?;
    let cap = r.u32("capability")?;
    if cap != CAP_HANDLES {
        return Err(TpmError::malformed(format!(
            "TPM2_GetCapability response: capability 0x{cap:x}, expected handles"
        )));
    }
    let count = r.u32("count")?;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > r.remaining() / 4 {
        return Err(TpmError::malformed(format!(
            "TPM2_GetCapability response: {count} handles in {} bytes",
            r.remaining()
        )));
    }
    let handles = (0..count)
        .map(|_| r.u32("handle"))
        .collect::<Result<Vec<_>, _>>()?;
    r.finish()?;
    Ok((handles, more != 0))
}

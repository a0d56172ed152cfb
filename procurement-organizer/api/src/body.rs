//! How the gateway reads every request body: at most [`MAX_BODY`] bytes (the bodies are a
//! few hundred bytes), then the LM contract's strict JSON reading (one value, no trailing
//! data, unknown fields refused, errors naming the field).

use serde::de::DeserializeOwned;

/// Largest request body the gateway accepts.
pub const MAX_BODY: usize = 4 * 1024;

/// Why a body was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    pub message: String,
}

/// Parses a request body as `T`.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    if bytes.len() > MAX_BODY {
        return Err(BodyError {
            message: format!(
                "the request body is {} bytes, larger than {MAX_BODY}",
                bytes.len()
            ),
        });
    }
    lm_api::parse_body(bytes).map_err(|e| BodyError { message: e.message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyRequest, RegisterPeer};

    fn reg(body: &str) -> String {
        parse_body::<RegisterPeer>(body.as_bytes())
            .unwrap_err()
            .message
    }

    #[test]
    fn hostile_bodies_are_refused_with_the_field_named() {
        let key = format!("{}=", "A".repeat(43));
        assert!(
            parse_body::<RegisterPeer>(format!(r#"{{"wg_public_key":"{key}"}}"#).as_bytes())
                .is_ok()
        );
        assert!(reg(r#"{"wg_public_key":"AAAA"}"#).contains("wg_public_key"));
        assert!(reg(&format!(r#"{{"wg_public_key":"{key}","lease":"l-1"}}"#)).contains("lease"));
        assert!(reg(&format!(r#"{{"wg_public_key":"{key}"}} {{}}"#)).contains("trailing"));
        // No key at all is an IPsec registration; a null or empty one is not a key.
        let ipsec = parse_body::<RegisterPeer>(b"{}").unwrap();
        assert_eq!(ipsec.wg_public_key, None);
        assert!(reg(r#"{"wg_public_key":""}"#).contains("wg_public_key"));
        assert!(reg("").contains("empty"));
        assert!(reg("null").contains("invalid"));
        assert!(reg(&"[".repeat(3000)).contains("invalid"));
        assert!(reg(&" ".repeat(MAX_BODY + 1)).contains("larger than"));
        // A 33-byte key is refused even though it is valid base64.
        let long = "A".repeat(44);
        assert!(reg(&format!(r#"{{"wg_public_key":"{long}"}}"#)).contains("wg_public_key"));
        let e = parse_body::<KeyRequest>(br#"{"image":"../etc/passwd","epoch":1}"#).unwrap_err();
        assert!(e.message.contains("image"), "{e}");
        let img = "0f".repeat(16);
        assert!(
            parse_body::<KeyRequest>(format!(r#"{{"image":"{img}","epoch":7}}"#).as_bytes())
                .is_ok()
        );
        for epoch in ["-1", "4294967296", "1.5", "\"1\"", "null"] {
            let body = format!(r#"{{"image":"{img}","epoch":{epoch}}}"#);
            let e = parse_body::<KeyRequest>(body.as_bytes()).unwrap_err();
            assert!(e.message.contains("epoch"), "{epoch}: {e}");
        }
    }
}

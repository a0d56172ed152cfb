//! How every JSON request body of the API is read: at most [`MAX_BODY`] bytes, one JSON value
//! and nothing after it, unknown fields refused (by the types), and an error that names the
//! field that is wrong (`count: invalid type: string "x", expected u32`). The LM answers such
//! errors with a 400; clients can check bodies the same way before sending.

use serde::de::DeserializeOwned;

/// Largest request body the API accepts.
pub const MAX_BODY: usize = 64 * 1024;

/// Why a body was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    pub message: String,
}

/// Parses a request body as `T`.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let err = |message: String| BodyError { message };
    if bytes.len() > MAX_BODY {
        return Err(err(format!(
            "the request body is larger than {MAX_BODY} bytes"
        )));
    }
    if bytes.is_empty() {
        return Err(err(
            "the request body is empty; send a JSON object".to_string()
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            err(format!("invalid request body: {inner}"))
        } else {
            err(format!("invalid request body: {path}: {inner}"))
        }
    })?;
    de.end().map_err(|e| {
        err(format!(
            "invalid request body: trailing data after the JSON object ({e})"
        ))
    })?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CreateLease, EnrollRequest};

    fn msg(body: &str) -> String {
        parse_body::<CreateLease>(body.as_bytes())
            .unwrap_err()
            .message
    }

    #[test]
    fn errors_name_the_field() {
        assert!(msg(r#"{"count":"x","duration_s":1}"#).contains("count"));
        assert!(msg(r#"{"count":1}"#).contains("duration_s"));
        assert!(msg(r#"{"count":1,"duration_s":1,"tunnel":"gre"}"#).contains("tunnel"));
        assert!(msg(r#"{"count":1,"duration_s":1,"bogus":1}"#).contains("bogus"));
        assert!(msg(r#"{"count":1,"duration_s":1} {}"#).contains("trailing"));
        assert!(msg("").contains("empty"));
        assert!(msg("[").contains("invalid"));
        assert!(
            msg(&"[".repeat(10_000)).contains("invalid"),
            "deep nesting is an error, not a crash"
        );
        assert!(msg(&" ".repeat(MAX_BODY + 1)).contains("larger than"));
        let e = parse_body::<EnrollRequest>(
            br#"{"lease":"l-1","boot_id":"0000000000000001","boot_mac":"52:54:00:00:00:01","token":"t","csr_pem":""}"#,
        )
        .unwrap_err();
        assert!(e.message.contains("lease"), "{e}");
    }
}

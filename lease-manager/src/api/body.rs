//! JSON request bodies: at most [`MAX_BODY`] bytes, and every error is a 400 that names the
//! field (`count: invalid type: string "x", expected u32`).

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::http_util::{HttpError, MAX_BODY};

/// A parsed JSON body.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                HttpError::new(
                    StatusCode::BAD_REQUEST,
                    format!("the request body is larger than {MAX_BODY} bytes"),
                )
            })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` as `T` ([`lm_api::parse_body`]), as a 400 naming the field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HttpError> {
    lm_api::parse_body(bytes).map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e.message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lm_api::CreateLease;

    fn err(body: &str) -> String {
        parse::<CreateLease>(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err(r#"{"count":"x","duration_s":1}"#).contains("count"));
        assert!(err(r#"{"count":1}"#).contains("duration_s"));
        assert!(err(r#"{"count":1,"duration_s":1,"tunnel":"gre"}"#).contains("tunnel"));
        assert!(err(r#"{"count":1,"duration_s":1,"bogus":1}"#).contains("bogus"));
        assert!(err(r#"{"count":1,"duration_s":1} {}"#).contains("trailing"));
        assert!(err("").contains("empty"));
        assert!(err("[").contains("invalid"));
        assert!(
            err(&"[".repeat(10_000)).contains("invalid"),
            "deep nesting is an error, not a crash"
        );
    }
}

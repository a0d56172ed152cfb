//! Shared pieces of the LM's HTTP surfaces: JSON bodies that fail with a 400 naming the field,
//! and errors as `{"error": "..."}`.

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lm_api::ApiError;
use serde::de::DeserializeOwned;

/// Largest request body any endpoint accepts.
pub const MAX_BODY: usize = 64 * 1024;

/// An error answer.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub message: String,
}

impl HttpError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ApiError {
                error: self.message,
            }),
        )
            .into_response()
    }
}

/// Parses a JSON body of type `T`; what is wrong goes back as a 400 that names the field.
pub fn json_body<T: DeserializeOwned>(what: &str, body: &Bytes) -> Result<T, HttpError> {
    if body.len() > MAX_BODY {
        return Err(HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{what} body is {} bytes; the limit is {MAX_BODY}",
                body.len()
            ),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, format!("invalid {what} body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let e = json_body::<lm_api::AddServer>(
            "server",
            &Bytes::from_static(b"{\"name\":\"a\",\"mac\":\"zz\"}"),
        )
        .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("MAC address"), "{}", e.message);
        let e = json_body::<lm_api::AddServer>(
            "server",
            &Bytes::from_static(b"{\"mac\":\"52:54:00:00:00:01\"}"),
        )
        .unwrap_err();
        assert!(e.message.contains("name"), "{}", e.message);
        let big = Bytes::from(vec![b' '; MAX_BODY + 1]);
        assert_eq!(
            json_body::<lm_api::AddServer>("server", &big)
                .unwrap_err()
                .status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}

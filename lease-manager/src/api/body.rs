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

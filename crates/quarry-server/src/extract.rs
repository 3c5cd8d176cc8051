//! Request extractors whose rejections are JSON errors: a body that is too large is a 413, one that
//! is not the expected JSON a 400 whose message says which field is wrong.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// The request's body: 413 `payload_too_large` over the body limit, 400 when it cannot be read.
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                "payload_too_large",
                "request body is over the server's limit (server.body_limit_bytes)",
            )
        } else {
            ApiError::new(
                "invalid_request",
                format!("could not read the request body: {rej}"),
            )
        }
    })
}

/// `bytes` as JSON of `T`; 400 `invalid_json` naming what is wrong.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new("invalid_json", format!("invalid JSON body: {e}")))
}

/// A JSON body parsed with serde, whatever the content type says.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Err(ApiError::new(
                "invalid_json",
                "the request body is empty; send a JSON object",
            ));
        }
        parse(&bytes).map(JsonBody)
    }
}

/// [`JsonBody`] for a body that may be left out: an empty body is `T::default()`.
pub(crate) struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse(&bytes).map(OptionalJsonBody)
    }
}

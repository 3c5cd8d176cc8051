//! API errors and the one table that maps error codes to HTTP statuses.

use axum::Json;
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use quarry_index::ErrorKind;

/// An error as the client sees it: a code from [`status_of`]'s table and a message it can act on.
/// The body is `{"error": {"code", "message", "type", "param"}}`: quarry's code and message, and
/// OpenAI's error shape around them (`type` from the status, [`type_of`]; `param`, the request
/// field at fault when one is), so OpenAI clients of `/v1/embeddings` read it too.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
    /// Seconds after which the same request may succeed (`Retry-After`), when the server knows:
    /// a full task table, a server still opening, one that is stopping.
    pub retry_after: Option<u32>,
}

/// The code → status table. Caller mistakes are 4xx; only server faults are 5xx.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "invalid_request" | "invalid_json" => StatusCode::BAD_REQUEST,
        "unauthorized" => StatusCode::UNAUTHORIZED,
        "forbidden" => StatusCode::FORBIDDEN,
        "not_found"
        | "collection_not_found"
        | "document_not_found"
        | "task_not_found"
        | "route_not_found"
        | "model_not_found" => StatusCode::NOT_FOUND,
        "method_not_allowed" => StatusCode::METHOD_NOT_ALLOWED,
        "conflict" => StatusCode::CONFLICT,
        "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "busy" | "not_ready" | "embedding_unavailable" | "cancelled" => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        "timeout" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// OpenAI's error `type` of a status.
pub fn type_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::FORBIDDEN => "permission_error",
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
        s if s.is_server_error() => "server_error",
        _ => "invalid_request_error",
    }
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    /// The error, telling the client to send the request again after `seconds`.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The error, naming the request field at fault.
    pub fn on(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }
}

impl From<quarry_index::Error> for ApiError {
    fn from(e: quarry_index::Error) -> Self {
        match e.kind() {
            ErrorKind::Internal => {
                // Internals are logged with the request id (the span), not sent.
                tracing::error!(error = %e, "internal error");
                ApiError::new(
                    "internal",
                    "internal error; the server log has the details under this request id",
                )
            }
            _ => ApiError::new(e.code(), e.to_string()),
        }
    }
}

impl From<quarry_core::Error> for ApiError {
    fn from(e: quarry_core::Error) -> Self {
        ApiError::new("invalid_request", e.to_string())
    }
}

/// The body of every error answer (4xx and 5xx): `{"error": {...}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

/// What went wrong: quarry's code and message, OpenAI's `type` and `param`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorObject {
    /// A stable code (docs/http-api.md, "Errors"): `invalid_request`, `invalid_json`,
    /// `unauthorized`, `forbidden`, `not_found`, `collection_not_found`, `document_not_found`,
    /// `task_not_found`, `model_not_found`, `route_not_found`, `method_not_allowed`, `conflict`,
    /// `payload_too_large`, `busy`, `not_ready`, `embedding_unavailable`, `cancelled`,
    /// `timeout` or `internal`.
    pub code: &'static str,
    /// What to change, for a person.
    pub message: String,
    /// OpenAI's error type, from the status: `invalid_request_error`, `authentication_error`,
    /// `permission_error`, `rate_limit_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The request field at fault, when there is one.
    pub param: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.code);
        let body = ErrorBody {
            error: ErrorObject {
                code: self.code,
                message: self.message,
                kind: type_of(status),
                param: self.param,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 section 3: a 401 names the scheme the client should use.
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"quarry\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_a_header_only_when_set() {
        let r = ApiError::new("busy", "full").retry_after(2).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[RETRY_AFTER], "2");
        let r = ApiError::new("busy", "a job runs").into_response();
        assert!(!r.headers().contains_key(RETRY_AFTER));
    }
}

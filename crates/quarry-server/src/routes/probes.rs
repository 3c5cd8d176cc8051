//! The open routes besides `/healthz`: `/readyz` (whether every collection is open) and
//! `/metrics` (the engine's telemetry for Prometheus).

use super::state::Shared;
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;

pub(super) async fn readyz(State(state): State<Shared>) -> Response {
    if state.options.ready.load(Ordering::Relaxed) {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        ApiError::new(
            "not_ready",
            "collections are still opening (or failed to open: the server log says why)",
        )
        .into_response()
    }
}

/// `GET /metrics`: the engine's telemetry in the OpenMetrics text format (Prometheus scrapes it).
/// Open like `/healthz`: it names collections and golden sets, never documents or queries.
pub(super) async fn metrics(State(state): State<Shared>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.engine.telemetry().encode(),
    )
        .into_response()
}

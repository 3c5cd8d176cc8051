//! The open probes: `/healthz` (the process is alive), `/readyz` (whether every collection is
//! open) and `/metrics` (the engine's telemetry for Prometheus).

use super::state::Shared;
use super::wire::Status;
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "probes",
    summary = "The process is alive",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Status)),
)]
pub(super) async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "probes",
    summary = "Every collection is open",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = Status),
        (status = 503, description = "`not_ready`: collections are still opening", body = crate::error::ErrorBody),
    ),
)]
pub(super) async fn readyz(State(state): State<Shared>) -> Response {
    if state.options.ready.load(Ordering::Relaxed) {
        Json(Status { status: "ready" }).into_response()
    } else {
        ApiError::new(
            "not_ready",
            "collections are still opening (or failed to open: the server log says why)",
        )
        .retry_after(1)
        .into_response()
    }
}

/// `GET /metrics`: the engine's telemetry in the OpenMetrics text format (Prometheus scrapes it).
/// Open like `/healthz`: it names collections and golden sets, never documents or queries.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "probes",
    summary = "The engine's telemetry for Prometheus",
    responses((status = 200, description = "the OpenMetrics text format", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)),
)]
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

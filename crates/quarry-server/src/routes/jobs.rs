//! Re-index jobs and version promotion (admin): `POST /v1/collections/{c}/reindex`,
//! `GET /v1/jobs`, `GET /v1/jobs/{id}`, `POST /v1/jobs/{id}/cancel`,
//! `POST /v1/collections/{c}/versions/{id}/activate` and `.../retire`. The server's job worker
//! ([`crate::schedule::job_loop`]) runs queued jobs.

use super::common::blocking;
use super::state::Shared;
use crate::auth::{Caller, role};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::views;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use quarry_index::jobs;

/// Exactly one of `embedder` (a re-index), `chunk` (a re-chunk), `quantization` (a
/// requantize) and `rebuild_index` (a requantize to the index's own quantization).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReindexRequest {
    /// A `[embedders.NAME]` of the server's configuration (or `local`, `hash`).
    pub embedder: Option<String>,
    /// New chunk options: `{"max_tokens", "overlap", "sizer", "context_chars"}` (missing ones take
    /// their defaults).
    pub chunk: Option<quarry_core::ChunkOptions>,
    /// `int8`, `binary` or `none`: the active version's vector index rebuilt from its stored vectors.
    pub quantization: Option<quarry_index::vectors::Quantization>,
    /// `true`: the active version's vector index rebuilt from its stored vectors with its own
    /// quantization and the server's `[vector]` settings.
    #[serde(default)]
    pub rebuild_index: bool,
}

pub(super) async fn reindex(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    JsonBody(req): JsonBody<ReindexRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let what = (req.embedder, req.chunk, req.quantization, req.rebuild_index);
    let job = blocking(move || match what {
        (Some(e), None, None, false) => Ok(jobs::enqueue_reindex(&state.engine, &collection, &e)?),
        (None, Some(c), None, false) => Ok(jobs::enqueue_rechunk(&state.engine, &collection, c)?),
        (None, None, Some(q), false) => {
            Ok(jobs::enqueue_requantize(&state.engine, &collection, q)?)
        }
        (None, None, None, true) => Ok(jobs::enqueue_rebuild_index(&state.engine, &collection)?),
        _ => Err(ApiError::new(
            "invalid_request",
            "send one of `embedder` (re-embed with it), `chunk` (re-chunk with these options), \
             `quantization` (`int8`, `binary` or `none`: rebuild the vector index from stored vectors \
             with it) or `rebuild_index: true` (rebuild it with its own quantization)",
        )),
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "job_id": job.id, "job": views::job(&job) })),
    ))
}

pub(super) async fn list(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let jobs = blocking(move || Ok(jobs::list(&state.engine, None)?)).await?;
    Ok(Json(views::jobs(&jobs)))
}

pub(super) async fn get(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let job = blocking(move || Ok(jobs::job(&state.engine, &id)?)).await?;
    Ok(Json(views::job(&job)))
}

pub(super) async fn cancel(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let job = blocking(move || Ok(jobs::cancel(&state.engine, &id)?)).await?;
    Ok(Json(views::job(&job)))
}

pub(super) async fn activate(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let v = blocking(move || Ok(state.engine.activate_version(&collection, &id)?)).await?;
    Ok(Json(views::version(&v)))
}

pub(super) async fn retire(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(move || Ok(state.engine.retire_version(&collection, &id)?)).await?;
    Ok(Json(serde_json::json!({ "retired": true })))
}

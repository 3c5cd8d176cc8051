//! Re-index jobs and version promotion (admin): `POST /v1/collections/{c}/reindex`,
//! `GET /v1/jobs`, `GET /v1/jobs/{id}`, `POST /v1/jobs/{id}/cancel`,
//! `POST /v1/collections/{c}/versions/{id}/activate` and `.../retire`. The server's job worker
//! ([`crate::schedule::job_loop`]) runs queued jobs.

use super::common::blocking;
use super::state::Shared;
use super::wire::{JobList, JobQueued, Retired, VersionAnswer};
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
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
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

#[utoipa::path(
    post,
    path = "/v1/collections/{collection}/reindex",
    operation_id = "reindex",
    tag = "jobs",
    summary = "Queue a re-index, re-chunk, requantize or index rebuild job",
    request_body = ReindexRequest,
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "queued", body = super::wire::JobQueued),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the admin role", body = crate::error::ErrorBody),
        (status = 404, description = "`collection_not_found`: no such collection", body = crate::error::ErrorBody),
                (status = 413, description = "`payload_too_large`: the body is over `server.body_limit_bytes`", body = crate::error::ErrorBody),
        (status = 409, description = "`conflict`: a re-index, re-chunk or requantize of the collection is already queued or running (one at a time)", body = crate::error::ErrorBody),
        (status = 503, description = "`cancelled`: the server is stopping", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn reindex(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    JsonBody(req): JsonBody<ReindexRequest>,
) -> Result<(StatusCode, Json<JobQueued>), ApiError> {
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
        Json(JobQueued {
            job_id: job.id.clone(),
            job: views::job(&job),
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    summary = "Background jobs and their progress",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "every job", body = super::wire::JobList),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the admin role", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn list(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
) -> Result<Json<JobList>, ApiError> {
    let jobs = blocking(move || Ok(jobs::list(&state.engine, None)?)).await?;
    Ok(Json(JobList {
        jobs: jobs.iter().map(views::job).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    summary = "One job",
    params(("id" = String, Path, description = "the job id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the job, as in `GET /v1/jobs`", body = crate::views::JobView),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the admin role", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no such job", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn get(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let job = blocking(move || Ok(jobs::job(&state.engine, &id)?)).await?;
    Ok(Json(views::job(&job)))
}

#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    operation_id = "cancel_job",
    tag = "jobs",
    summary = "Ask a job to stop",
    params(("id" = String, Path, description = "the job id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the job, its cancellation requested", body = crate::views::JobView),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the admin role", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no such job", body = crate::error::ErrorBody),
        (status = 409, description = "`conflict`: the job has finished", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn cancel(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let job = blocking(move || Ok(jobs::cancel(&state.engine, &id)?)).await?;
    Ok(Json(views::job(&job)))
}

#[utoipa::path(
    post,
    path = "/v1/collections/{collection}/versions/{id}/activate",
    operation_id = "activate_version",
    tag = "versions",
    summary = "Promote or roll back to a version",
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$"), ("id" = String, Path, description = "the embedding version's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the version now active", body = super::wire::VersionAnswer),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the admin role", body = crate::error::ErrorBody),
        (status = 404, description = "no such collection or version", body = crate::error::ErrorBody),
        (status = 409, description = "`conflict`: the version cannot be activated now", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn activate(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Json<VersionAnswer>, ApiError> {
    let v = blocking(move || Ok(state.engine.activate_version(&collection, &id)?)).await?;
    Ok(Json(VersionAnswer {
        version: serde_json::to_value(&v).unwrap_or_default(),
    }))
}

#[utoipa::path(
    post,
    path = "/v1/collections/{collection}/versions/{id}/retire",
    operation_id = "retire_version",
    tag = "versions",
    summary = "Delete a version's index",
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$"), ("id" = String, Path, description = "the embedding version's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "retired", body = super::wire::Retired),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the admin role", body = crate::error::ErrorBody),
        (status = 404, description = "no such collection or version", body = crate::error::ErrorBody),
        (status = 409, description = "`conflict`: the version is active or building", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn retire(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Json<Retired>, ApiError> {
    blocking(move || Ok(state.engine.retire_version(&collection, &id)?)).await?;
    Ok(Json(Retired { retired: true }))
}

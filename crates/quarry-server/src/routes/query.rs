//! `POST /v1/collections/{c}/query`: hits of the documents the caller may read; and
//! `POST /v1/collections/{c}/query/batch`: several such queries in one request, their texts
//! embedded in one call to the model.

use super::common::search_work;
use super::state::{AppState, Shared};
use crate::auth::{Caller, role};
use crate::error::ApiError;
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::{Path, State};
use quarry_core::Mode;
use quarry_core::query::{QueryDefaults, QueryRequest};
use quarry_index::eval::mode_name;
use quarry_index::{QueryOutcome, SearchResponse, Searcher};
use std::time::Instant;

#[utoipa::path(
    post,
    path = "/v1/collections/{collection}/query",
    operation_id = "query",
    tag = "query",
    summary = "Search the documents the caller may read",
    request_body = quarry_core::query::QueryRequest,
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the hits", body = quarry_index::SearchResponse),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 404, description = "`collection_not_found`: no such collection", body = crate::error::ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over `server.body_limit_bytes`", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn query(
    caller: Caller<role::Reader>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    JsonBody(req): JsonBody<QueryRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    let started = Instant::now();
    let mode = req.mode.unwrap_or(state.options.default_mode);
    let answer = search_work(&state.clone(), move || {
        // A query of a collection that does not exist is not counted: its name is the caller's.
        let searcher = state.engine.searcher(&collection)?;
        let answer = req
            .options(defaults(&state, &searcher))
            .map_err(quarry_index::Error::from)
            .and_then(|q| searcher.search(&q, &caller.principal));
        let secs = started.elapsed().as_secs_f64();
        observe(&state, &collection, mode, outcome(&answer), secs);
        Ok(answer?)
    })
    .await?;
    Ok(Json(answer))
}

/// The body of a batch: each element is the body of the single query route.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchRequest {
    /// Parsed one by one, so that an error names its element; 1 to `server.max_batch_queries`.
    #[schema(value_type = Vec<quarry_core::query::QueryRequest>, min_items = 1)]
    queries: Vec<serde_json::Value>,
}

/// The answers of a batch, in the order of its queries.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct BatchResponse {
    answers: Vec<SearchResponse>,
}

/// Runs every query of the batch, or none: a query the single route would refuse (bad JSON, a
/// bad option, a filter or vector the collection cannot take) fails the whole batch with its
/// error, prefixed by `queries[i]: `. Each query is counted in the metrics as a single query.
#[utoipa::path(
    post,
    path = "/v1/collections/{collection}/query/batch",
    operation_id = "query_batch",
    tag = "query",
    summary = "Several searches in one request",
    request_body = BatchRequest,
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the answers, in the order of the queries", body = BatchResponse),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 404, description = "`collection_not_found`: no such collection", body = crate::error::ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over `server.body_limit_bytes`", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn batch(
    caller: Caller<role::Reader>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    JsonBody(req): JsonBody<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let started = Instant::now();
    let max = state.options.max_batch_queries;
    if req.queries.is_empty() || req.queries.len() > max {
        return Err(ApiError::new(
            "invalid_request",
            format!(
                "`queries` has {} queries; send 1 to {max} (server.max_batch_queries)",
                req.queries.len()
            ),
        ));
    }
    let answers = search_work(&state.clone(), move || {
        let searcher = state.engine.searcher(&collection)?;
        let mut queries = Vec::with_capacity(req.queries.len());
        for (i, value) in req.queries.into_iter().enumerate() {
            let req: QueryRequest = serde_json::from_value(value).map_err(|e| {
                ApiError::new("invalid_json", format!("queries[{i}]: invalid query: {e}"))
            })?;
            let mode = req.mode.unwrap_or(state.options.default_mode);
            match req.options(defaults(&state, &searcher)) {
                Ok(q) => queries.push(q),
                Err(e) => {
                    let secs = started.elapsed().as_secs_f64();
                    observe(&state, &collection, mode, QueryOutcome::Invalid, secs);
                    return Err(in_batch(i, e.into()));
                }
            }
        }
        let answers = searcher.search_batch(&queries, &caller.principal);
        for (q, answer) in queries.iter().zip(&answers) {
            let secs = match answer {
                Ok(a) => a.took_ms / 1e3,
                Err(_) => started.elapsed().as_secs_f64(),
            };
            observe(&state, &collection, q.mode, outcome(answer), secs);
        }
        answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| a.map_err(|e| in_batch(i, e)))
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await?;
    Ok(Json(BatchResponse { answers }))
}

/// The error of query `i` of a batch, named by its index (an internal error stays unnamed: its
/// message is the generic one).
fn in_batch(i: usize, e: quarry_index::Error) -> ApiError {
    let mut api = ApiError::from(e);
    if api.code != "internal" {
        api.message = format!("queries[{i}]: {}", api.message);
    }
    api
}

/// What a query leaves to the server's configuration and the collection's default fusion.
fn defaults(state: &AppState, searcher: &Searcher) -> QueryDefaults {
    let d = &state.options;
    QueryDefaults {
        top_k: d.default_top_k,
        mode: d.default_mode,
        group_by: d.default_group_by,
        fusion: searcher.default_fusion(),
    }
}

/// How a query ended, for the metrics.
fn outcome(answer: &Result<SearchResponse, quarry_index::Error>) -> QueryOutcome {
    match answer {
        Ok(a) if a.degraded => QueryOutcome::Degraded,
        Ok(_) => QueryOutcome::Ok,
        Err(e) if e.kind() == quarry_index::ErrorKind::Input => QueryOutcome::Invalid,
        Err(_) => QueryOutcome::Error,
    }
}

/// Counts one served query of `collection` in the metrics, by the mode asked for.
fn observe(state: &AppState, collection: &str, mode: Mode, outcome: QueryOutcome, secs: f64) {
    state
        .engine
        .telemetry()
        .observe_query(collection, mode_name(mode), outcome, secs);
}

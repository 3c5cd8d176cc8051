//! `POST /v1/collections/{c}/query`: hits of the documents the caller may read.

use super::common::blocking;
use super::state::Shared;
use crate::auth::{Caller, role};
use crate::error::ApiError;
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::{Path, State};
use quarry_core::{Fusion, GroupBy, Mode, QueryOptions};
use quarry_index::eval::mode_name;
use quarry_index::{QueryOutcome, SearchResponse};
use std::time::Instant;

/// The request body (docs/http-api.md, "Query"). `filter` and `explain` are accepted for forward compatibility.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueryRequest {
    pub query: String,
    pub top_k: Option<usize>,
    pub mode: Option<Mode>,
    pub group_by: Option<GroupBy>,
    pub fusion: Option<Fusion>,
    pub filter: Option<serde_json::Value>,
    pub explain: Option<bool>,
}

pub(super) async fn query(
    caller: Caller<role::Reader>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    JsonBody(req): JsonBody<QueryRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    if req
        .filter
        .as_ref()
        .is_some_and(|f| f.as_object().is_none_or(|o| !o.is_empty()))
    {
        return Err(ApiError::new(
            "invalid_request",
            "`filter`: metadata filters are not supported yet; send {} or omit it",
        ));
    }
    let explain = req.explain == Some(true);
    let started = Instant::now();
    let d = &state.options;
    let mode = req.mode.unwrap_or(d.default_mode);
    let (top_k, group_by) = (
        req.top_k.unwrap_or(d.default_top_k),
        req.group_by.unwrap_or(d.default_group_by),
    );
    let (text, fusion) = (req.query, req.fusion);
    let mut answer = blocking(move || {
        // A query of a collection that does not exist is not counted: its name is the caller's.
        let searcher = state.engine.searcher(&collection)?;
        let answer = QueryOptions::new(text, top_k, mode, group_by)
            .and_then(|q| q.with_fusion(fusion.unwrap_or(searcher.default_fusion())))
            .map_err(quarry_index::Error::from)
            .and_then(|q| searcher.search(&q, &caller.principal));
        let outcome = match &answer {
            Ok(a) if a.degraded => QueryOutcome::Degraded,
            Ok(_) => QueryOutcome::Ok,
            Err(e) if e.kind() == quarry_index::ErrorKind::Input => QueryOutcome::Invalid,
            Err(_) => QueryOutcome::Error,
        };
        state.engine.telemetry().observe_query(
            &collection,
            mode_name(mode),
            outcome,
            started.elapsed().as_secs_f64(),
        );
        Ok(answer?)
    })
    .await?;
    if explain {
        answer
            .warnings
            .push("`explain` has no effect yet; per-retriever scores are in `scores`".to_owned());
    }
    Ok(Json(answer))
}

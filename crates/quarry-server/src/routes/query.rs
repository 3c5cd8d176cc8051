//! `POST /v1/collections/{c}/query`: hits of the documents the caller may read.

use super::{Shared, blocking};
use crate::auth::{Caller, role};
use crate::error::ApiError;
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::{Path, State};
use quarry_core::{Fusion, GroupBy, Mode, QueryOptions};
use quarry_index::SearchResponse;

/// The request body (API.md). `filter` and `explain` are accepted for forward compatibility.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub query: String,
    pub top_k: Option<usize>,
    pub mode: Option<Mode>,
    pub group_by: Option<GroupBy>,
    pub fusion: Option<Fusion>,
    pub filter: Option<serde_json::Value>,
    pub explain: Option<bool>,
}

pub async fn query(
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
    let d = &state.options;
    let q = QueryOptions::new(
        req.query,
        req.top_k.unwrap_or(d.default_top_k),
        req.mode.unwrap_or(d.default_mode),
        req.group_by.unwrap_or(d.default_group_by),
    )?;
    let fusion = req.fusion;
    let mut answer = blocking(move || {
        let searcher = state.engine.searcher(&collection)?;
        let q = q.with_fusion(fusion.unwrap_or(searcher.default_fusion()))?;
        Ok(searcher.search(&q, &caller.principal)?)
    })
    .await?;
    if explain {
        answer
            .warnings
            .push("`explain` has no effect yet; per-retriever scores are in `scores`".to_owned());
    }
    Ok(Json(answer))
}

//! `POST /v1/collections/{c}/query`.

use super::{Shared, blocking};
use crate::error::ApiError;
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::{Path, State};
use quarry_core::{GroupBy, Mode, QueryOptions};
use quarry_index::SearchResponse;

/// The request body (API.md). `fusion`, `filter` and `explain` are accepted for forward
/// compatibility; they take effect with the retrievers that use them.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub query: String,
    pub top_k: Option<usize>,
    pub mode: Option<Mode>,
    pub group_by: Option<GroupBy>,
    pub fusion: Option<serde_json::Value>,
    pub filter: Option<serde_json::Value>,
    pub explain: Option<bool>,
}

pub async fn query(
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
    let ignored: Vec<&str> = [
        ("fusion", req.fusion.is_some()),
        ("explain", req.explain == Some(true)),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    let d = &state.options;
    let q = QueryOptions::new(
        req.query,
        req.top_k.unwrap_or(d.default_top_k),
        req.mode.unwrap_or(d.default_mode),
        req.group_by.unwrap_or(d.default_group_by),
    )?;
    let mut answer = blocking(move || Ok(state.engine.searcher(&collection)?.search(&q)?)).await?;
    for name in ignored {
        answer.warnings.push(format!(
            "`{name}` has no effect yet: only the BM25 retriever answered"
        ));
    }
    Ok(Json(answer))
}

//! `GET /v1/collections` and `GET /v1/collections/{c}`: counts as the caller sees them;
//! `GET /v1/collections/{c}/versions` (admin): the collection's embedding versions.

use super::{Shared, blocking};
use crate::auth::{Caller, role};
use crate::error::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use quarry_index::CollectionStats;
use quarry_index::VersionInfo;

pub async fn list(
    caller: Caller<role::Reader>,
    State(state): State<Shared>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = blocking(move || Ok(state.engine.list(&caller.principal)?)).await?;
    Ok(Json(serde_json::json!({ "collections": list })))
}

pub async fn stats(
    caller: Caller<role::Reader>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
) -> Result<Json<CollectionStats>, ApiError> {
    Ok(Json(
        blocking(move || Ok(state.engine.stats(&collection, &caller.principal)?)).await?,
    ))
}

pub async fn versions(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let versions: Vec<VersionInfo> =
        blocking(move || Ok(state.engine.versions(&collection)?)).await?;
    Ok(Json(serde_json::json!({ "versions": versions })))
}

//! `GET /v1/collections` and `GET /v1/collections/{c}`.

use super::{Shared, blocking};
use crate::error::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use quarry_core::Principal;
use quarry_index::CollectionStats;

pub async fn list(State(state): State<Shared>) -> Result<Json<serde_json::Value>, ApiError> {
    let list = blocking(move || Ok(state.engine.list(&Principal::local_admin())?)).await?;
    Ok(Json(serde_json::json!({ "collections": list })))
}

pub async fn stats(
    State(state): State<Shared>,
    Path(collection): Path<String>,
) -> Result<Json<CollectionStats>, ApiError> {
    Ok(Json(
        blocking(move || Ok(state.engine.stats(&collection, &Principal::local_admin())?)).await?,
    ))
}

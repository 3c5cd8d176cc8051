//! `GET /v1/collections` and `GET /v1/collections/{c}`: counts as the caller sees them (sizes
//! for admins); `PUT /v1/collections/{c}` (admin): create with settings; `DELETE
//! /v1/collections/{c}` (admin): delete with everything it holds; `GET
//! /v1/collections/{c}/versions` (admin): the collection's embedding versions.

use super::common::blocking;
use super::state::Shared;
use crate::auth::{Caller, role};
use crate::error::ApiError;
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use quarry_index::VersionInfo;
use quarry_index::{CollectionDeleted, CollectionSettings, CollectionStats};

pub(super) async fn list(
    caller: Caller<role::Reader>,
    State(state): State<Shared>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = blocking(move || Ok(state.engine.list(&caller.principal)?)).await?;
    Ok(Json(serde_json::json!({ "collections": list })))
}

pub(super) async fn stats(
    caller: Caller<role::Reader>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
) -> Result<Json<CollectionStats>, ApiError> {
    Ok(Json(
        blocking(move || Ok(state.engine.stats(&collection, &caller.principal)?)).await?,
    ))
}

pub(super) async fn versions(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let versions: Vec<VersionInfo> =
        blocking(move || Ok(state.engine.versions(&collection)?)).await?;
    Ok(Json(crate::views::versions(&versions)))
}

/// `PUT /v1/collections/{c}` with `{"chunk": {...}, "embedder": "NAME"}` (both optional: the
/// configured defaults): 201 with the collection when created, 200 when it exists with these
/// settings, 409 `conflict` when it exists with others.
pub(super) async fn create(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    JsonBody(settings): JsonBody<CollectionSettings>,
) -> Result<(StatusCode, Json<CollectionStats>), ApiError> {
    let (stats, created) =
        blocking(move || Ok(state.engine.create_collection(&collection, &settings)?)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(stats)))
}

/// `PATCH /v1/collections/{c}`'s body: the BM25 parameters to change (those left out keep their
/// values).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CollectionPatch {
    pub bm25: quarry_core::bm25::Bm25Patch,
}

/// `PATCH /v1/collections/{c}` with `{"bm25": {"k1", "b", "k3"}}`: how the collection scores
/// BM25, changed in place (the next query scores with it; nothing is re-indexed).
pub(super) async fn patch(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    JsonBody(patch): JsonBody<CollectionPatch>,
) -> Result<Json<CollectionStats>, ApiError> {
    Ok(Json(
        blocking(move || {
            let engine = &state.engine;
            let now = engine
                .stats(&collection, &quarry_core::Principal::local_admin())?
                .bm25;
            Ok(engine.set_bm25(&collection, patch.bm25.apply(now))?)
        })
        .await?,
    ))
}

/// `DELETE /v1/collections/{c}`: the collection and everything of it; 404 when there is none,
/// 503 `busy` while a job of it is queued or running.
pub(super) async fn delete(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
) -> Result<Json<CollectionDeleted>, ApiError> {
    Ok(Json(
        blocking(move || Ok(state.engine.delete_collection(&collection)?)).await?,
    ))
}

//! `GET /v1/collections` and `GET /v1/collections/{c}`: counts as the caller sees them (sizes
//! for admins); `PUT /v1/collections/{c}` (admin): create with settings; `DELETE
//! /v1/collections/{c}` (admin): delete with everything it holds; `GET
//! /v1/collections/{c}/versions` (admin): the collection's embedding versions.

use super::common::blocking;
use super::state::Shared;
use super::wire::{CollectionList, VersionList};
use crate::auth::{Caller, role};
use crate::error::ApiError;
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use quarry_index::VersionInfo;
use quarry_index::{CollectionDeleted, CollectionSettings, CollectionStats};

#[utoipa::path(
    get,
    path = "/v1/collections",
    operation_id = "list_collections",
    tag = "collections",
    summary = "Every collection with its stats",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "every collection the server holds (sizes for admins)", body = super::wire::CollectionList),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn list(
    caller: Caller<role::Reader>,
    State(state): State<Shared>,
) -> Result<Json<CollectionList>, ApiError> {
    let collections = blocking(move || Ok(state.engine.list(&caller.principal)?)).await?;
    Ok(Json(CollectionList { collections }))
}

#[utoipa::path(
    get,
    path = "/v1/collections/{collection}",
    operation_id = "get_collection",
    tag = "collections",
    summary = "One collection's stats",
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "its stats (generation, vectors and sizes for admins)", body = quarry_index::CollectionStats),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 404, description = "`collection_not_found`: no such collection", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn stats(
    caller: Caller<role::Reader>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
) -> Result<Json<CollectionStats>, ApiError> {
    Ok(Json(
        blocking(move || Ok(state.engine.stats(&collection, &caller.principal)?)).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/collections/{collection}/versions",
    operation_id = "list_versions",
    tag = "versions",
    summary = "The collection's embedding versions",
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "its versions", body = super::wire::VersionList),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the admin role", body = crate::error::ErrorBody),
        (status = 404, description = "`collection_not_found`: no such collection", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn versions(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    let versions: Vec<VersionInfo> =
        blocking(move || Ok(state.engine.versions(&collection)?)).await?;
    Ok(Json(VersionList {
        versions: versions
            .iter()
            .map(|v| serde_json::to_value(v).unwrap_or_default())
            .collect(),
    }))
}

/// `PUT /v1/collections/{c}` with `{"chunk": {...}, "embedder": "NAME"}` (both optional: the
/// configured defaults): 201 with the collection when created, 200 when it exists with these
/// settings, 409 `conflict` when it exists with others.
#[utoipa::path(
    put,
    path = "/v1/collections/{collection}",
    operation_id = "create_collection",
    tag = "collections",
    summary = "Create a collection with its settings",
    request_body = quarry_index::CollectionSettings,
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "created", body = quarry_index::CollectionStats),
        (status = 200, description = "it exists with exactly these settings", body = quarry_index::CollectionStats),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the admin role", body = crate::error::ErrorBody),
        (status = 409, description = "`conflict`: it exists with other settings", body = crate::error::ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over `server.body_limit_bytes`", body = crate::error::ErrorBody),
    )
)]
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
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CollectionPatch {
    pub bm25: quarry_core::bm25::Bm25Patch,
}

/// `PATCH /v1/collections/{c}` with `{"bm25": {"k1", "b", "k3"}}`: how the collection scores
/// BM25, changed in place (the next query scores with it; nothing is re-indexed).
#[utoipa::path(
    patch,
    path = "/v1/collections/{collection}",
    operation_id = "patch_collection",
    tag = "collections",
    summary = "Change how the collection scores BM25, in place",
    request_body = CollectionPatch,
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "its stats with the new parameters", body = quarry_index::CollectionStats),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the admin role", body = crate::error::ErrorBody),
        (status = 404, description = "`collection_not_found`: no such collection", body = crate::error::ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over `server.body_limit_bytes`", body = crate::error::ErrorBody),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/v1/collections/{collection}",
    operation_id = "delete_collection",
    tag = "collections",
    summary = "Delete a collection and everything it holds",
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "what was deleted", body = quarry_index::CollectionDeleted),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the admin role", body = crate::error::ErrorBody),
        (status = 404, description = "`collection_not_found`: no such collection", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn delete(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
) -> Result<Json<CollectionDeleted>, ApiError> {
    Ok(Json(
        blocking(move || Ok(state.engine.delete_collection(&collection)?)).await?,
    ))
}

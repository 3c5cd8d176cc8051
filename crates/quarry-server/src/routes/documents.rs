//! The documents of a collection: `GET .../documents` (a page of documents, without their texts),
//! `GET .../documents/{id}` (one, with its text), `POST .../documents` (upsert a batch) and
//! `DELETE .../documents/{id}` (with `?forget=true`, admins only: erase it everywhere,
//! `Engine::forget`). A document the caller may not read answers exactly like a missing one: 404
//! `document_not_found`.

use super::common::blocking;
use super::state::Shared;
use super::tasks;
use super::wire::{DeleteAnswer, DocumentDeleted, DocumentList};
use crate::auth::{Caller, role};
use crate::error::ApiError;
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use quarry_core::{Principal, Role};
use quarry_index::ingest::Record;
use quarry_index::{Cancel, DocumentRow, Engine, IngestOptions, IngestSummary, ingest_records};
use serde::Deserialize;

/// Documents per page when `limit` is not given.
pub(super) const DEFAULT_LIMIT: usize = 100;
/// Most documents per page.
pub(super) const MAX_LIMIT: usize = 1000;

/// The documents to upsert: records as in JSONL ingest.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpsertRequest {
    /// Each a record: `_id` or `id` (a string or a number), `title`, `text`, and optional `acl`
    /// (an array of `user:` and `group:` ids) and `metadata` (an object); at least one.
    #[schema(value_type = Vec<quarry_index::ingest::Record>, min_items = 1)]
    pub documents: Vec<serde_json::Value>,
}

/// `?after=ID&limit=N`: the page after document `ID` (in doc id order).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// The page after this document id (`next_after` of the previous page).
    pub after: Option<String>,
    /// Documents per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/v1/collections/{collection}/documents",
    operation_id = "list_documents",
    tag = "documents",
    summary = "A page of the documents the caller may read, without their texts",
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$"), ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the page", body = super::wire::DocumentList),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 404, description = "`collection_not_found`: no such collection", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn list(
    caller: Caller<role::Reader>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<DocumentList>, ApiError> {
    let Query(params) = params.map_err(|e| {
        ApiError::new(
            "invalid_request",
            format!("{}; use ?after=ID&limit=N", e.body_text()),
        )
    })?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::new(
            "invalid_request",
            format!("`limit` {limit}: use 1 to {MAX_LIMIT}"),
        ));
    }
    let (mut docs, principal) = blocking(move || {
        // One more than asked, to know whether another page follows.
        let docs = state.engine.documents(
            &collection,
            &caller.principal,
            params.after.as_deref(),
            limit + 1,
        )?;
        Ok((docs, caller.principal))
    })
    .await?;
    let more = docs.len() > limit;
    docs.truncate(limit);
    let next_after = more.then(|| docs.last().map(|d| d.id.clone())).flatten();
    let documents = docs.into_iter().map(|d| shown(d, &principal)).collect();
    Ok(Json(DocumentList {
        documents,
        next_after,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/collections/{collection}/documents/{doc_id}",
    operation_id = "get_document",
    tag = "documents",
    summary = "One document with its text",
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$"), ("doc_id" = String, Path, description = "the document's id (it may contain `/`)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the document (its `acl` to writers and admins only)", body = quarry_index::DocumentRow),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 404, description = "`document_not_found` (also for a document the caller may not read) or `collection_not_found`", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn get(
    caller: Caller<role::Reader>,
    State(state): State<Shared>,
    Path((collection, doc_id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(move || {
        let doc = state
            .engine
            .document(&collection, &doc_id, &caller.principal)?;
        Ok(Json(shown(doc, &caller.principal)))
    })
    .await
}

/// A document as `caller` is shown it: its ACL only to writers and admins, since it names other
/// users and groups.
fn shown(doc: DocumentRow, caller: &Principal) -> serde_json::Value {
    let mut v = serde_json::to_value(doc).unwrap_or_default();
    if caller.role < Role::Writer
        && let Some(o) = v.as_object_mut()
    {
        o.remove("acl");
    }
    v
}

/// `?wait=false`: answer 202 with a task id at once instead of the summary after the commit.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct UpsertParams {
    /// `false`: answer 202 with a task at once (default: `true`, the summary after the commit).
    pub wait: Option<bool>,
}

#[utoipa::path(
    post,
    path = "/v1/collections/{collection}/documents",
    operation_id = "upsert_documents",
    tag = "documents",
    summary = "Upsert a batch of documents (creates the collection)",
    request_body = UpsertRequest,
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$"), UpsertParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the summary, after the commit (`embedded`, `cache_hits` to admins only)", body = quarry_index::IngestSummary),
        (status = 202, description = "`wait=false`: the task to poll", body = super::task_table::TaskView, headers(("Location" = String, description = "/v1/tasks/{id}"))),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the writer role, or replaces a document it may not read", body = crate::error::ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over `server.body_limit_bytes`", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn upsert(
    caller: Caller<role::Writer>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    params: Result<Query<UpsertParams>, QueryRejection>,
    cancel: Option<axum::Extension<quarry_index::Cancel>>,
    JsonBody(req): JsonBody<UpsertRequest>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| {
        ApiError::new(
            "invalid_request",
            format!("{}; the only parameter is ?wait=true|false", e.body_text()),
        )
    })?;
    if req.documents.is_empty() {
        return Err(ApiError::new(
            "invalid_request",
            "`documents` is empty; send at least one document",
        ));
    }
    // Checked here too, so that `wait=false` refuses a bad name at once instead of answering 202
    // with a task that can only fail.
    quarry_index::catalog::check_collection_name(&collection)?;
    let opts = IngestOptions {
        collection,
        // One generation per request, so a request that times out commits all or nothing.
        batch_docs: usize::MAX,
        ..state.options.ingest.clone()
    };
    let principal = caller.principal;
    let collection = opts.collection.clone();
    let engine = state.engine.clone();
    let write = {
        let principal = principal.clone();
        move |cancel: Option<Cancel>| {
            check_replaceable(&engine, &opts.collection, &req.documents, &principal)?;
            let opts = IngestOptions { cancel, ..opts };
            let summary = ingest_records(&engine, req.documents, &opts, "api")?;
            Ok(summary_for(summary, &principal))
        }
    };
    if params.wait == Some(false) {
        let task = tasks::spawn(&state, &principal, &collection, move |c| write(Some(c)))?;
        let location = format!("/v1/tasks/{}", task.task_id);
        return Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, location)],
            Json(task),
        )
            .into_response());
    }
    let summary = blocking(move || write(cancel.map(|c| c.0))).await?;
    Ok(Json(summary).into_response())
}

/// An ingest summary as `caller` is shown it. `embedded` and `cache_hits` only to admins: the
/// embedding cache is shared by every collection and keeps the vectors of deleted documents, so
/// a cache hit would tell a writer that a text exists where it may not read.
fn summary_for(summary: IngestSummary, caller: &Principal) -> serde_json::Value {
    let mut v = serde_json::to_value(summary).unwrap_or_default();
    if !caller.sees_all()
        && let Some(o) = v.as_object_mut()
    {
        o.remove("embedded");
        o.remove("cache_hits");
    }
    v
}

/// A writer adds documents and replaces those it may read. Replacing one it may not read is
/// refused before anything is written: it would overwrite a document the caller cannot see, and
/// tell it (as `updated` or `unchanged`) that the document exists. An admin reads everything.
fn check_replaceable(
    engine: &Engine,
    collection: &str,
    records: &[serde_json::Value],
    caller: &Principal,
) -> Result<(), ApiError> {
    if caller.sees_all() {
        return Ok(());
    }
    let known = engine.doc_states(collection)?;
    let default_acl = &engine.options().default_acl;
    for (i, value) in records.iter().enumerate() {
        // Malformed records are left for ingest_records, which names them.
        let Ok(rec) = Record::deserialize(value) else {
            continue;
        };
        if let Some(state) = known.get(&rec.id)
            && !caller.may_read(&state.acl, default_acl)
        {
            return Err(ApiError::new(
                "forbidden",
                format!(
                    "documents[{i}]: `{}` is a document this caller may not read, so it may not replace it; nothing was written",
                    rec.id
                ),
            ));
        }
    }
    Ok(())
}

/// `?forget=true`: erase the document everywhere instead of an ordinary delete.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DeleteParams {
    /// `true`: erase the document everywhere it left a copy (admin).
    #[serde(default)]
    pub forget: bool,
}

#[utoipa::path(
    delete,
    path = "/v1/collections/{collection}/documents/{doc_id}",
    operation_id = "delete_document",
    tag = "documents",
    summary = "Delete one document; with `forget=true`, erase it everywhere (admin)",
    params(("collection" = String, Path, description = "the collection's name: 1 to 64 ASCII letters, digits, `_` or `-`", pattern = "^[A-Za-z0-9_-]{1,64}$"), ("doc_id" = String, Path, description = "the document's id (it may contain `/`)"), DeleteParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "deleted, or what the forget erased", body = super::wire::DeleteAnswer),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the writer role (the admin role for `forget=true`)", body = crate::error::ErrorBody),
        (status = 404, description = "`document_not_found` or `collection_not_found`", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn delete(
    caller: Caller<role::Writer>,
    State(state): State<Shared>,
    Path((collection, doc_id)): Path<(String, String)>,
    params: Result<Query<DeleteParams>, QueryRejection>,
) -> Result<Json<DeleteAnswer>, ApiError> {
    let Query(params) = params.map_err(|e| {
        ApiError::new(
            "invalid_request",
            format!("{}; use ?forget=true or nothing", e.body_text()),
        )
    })?;
    if params.forget {
        // Checked before the document is looked up: a writer learns nothing about it.
        if caller.principal.role < Role::Admin {
            return Err(ApiError::new(
                "forbidden",
                "forgetting a document (?forget=true) takes the admin role; a writer may delete it",
            ));
        }
        return blocking(move || {
            let report = state
                .engine
                .forget(&collection, &doc_id, &caller.principal)?;
            Ok(Json(DeleteAnswer::Forgotten(report)))
        })
        .await;
    }
    blocking(move || {
        let stats = state
            .engine
            .delete_document(&collection, &doc_id, &caller.principal)?;
        Ok(Json(DeleteAnswer::Deleted(DocumentDeleted {
            deleted: doc_id,
            generation: stats.generation,
        })))
    })
    .await
}

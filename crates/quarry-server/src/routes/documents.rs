//! The documents of a collection: `GET .../documents` (a page of documents, without their texts),
//! `GET .../documents/{id}` (one, with its text), `POST .../documents` (upsert a batch) and
//! `DELETE .../documents/{id}` (with `?forget=true`, admins only: erase it everywhere,
//! `Engine::forget`). A document the caller may not read answers exactly like a missing one: 404
//! `document_not_found`.

use super::common::blocking;
use super::state::Shared;
use super::tasks;
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

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpsertRequest {
    pub documents: Vec<serde_json::Value>,
}

/// `?after=ID&limit=N`: the page after document `ID` (in doc id order).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    pub after: Option<String>,
    pub limit: Option<usize>,
}

pub(super) async fn list(
    caller: Caller<role::Reader>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
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
    let documents: Vec<serde_json::Value> =
        docs.into_iter().map(|d| shown(d, &principal)).collect();
    Ok(Json(
        serde_json::json!({"documents": documents, "next_after": next_after}),
    ))
}

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
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpsertParams {
    pub wait: Option<bool>,
}

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
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeleteParams {
    #[serde(default)]
    pub forget: bool,
}

pub(super) async fn delete(
    caller: Caller<role::Writer>,
    State(state): State<Shared>,
    Path((collection, doc_id)): Path<(String, String)>,
    params: Result<Query<DeleteParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
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
            Ok(Json(serde_json::to_value(report).unwrap_or_default()))
        })
        .await;
    }
    blocking(move || {
        let stats = state
            .engine
            .delete_document(&collection, &doc_id, &caller.principal)?;
        Ok(Json(
            serde_json::json!({"deleted": doc_id, "generation": stats.generation}),
        ))
    })
    .await
}

//! Writes sent with `wait=false`: `POST .../documents?wait=false` answers 202 with a task id at
//! once, and `GET /v1/tasks/{id}` tells how the write went. A task is not bounded by
//! `server.request_timeout_ms` (that is what it is for); it is cancelled, committing nothing, when
//! the server stops before its commit began.
//!
//! Tasks live in the server's memory, not in the catalog: after a restart their ids are unknown
//! (404), and a task that had not committed before the stop committed nothing, so a client that
//! cannot find its task sends the write again (upserts are idempotent). At most
//! [`MAX_PENDING`](super::task_table::MAX_PENDING) tasks wait or run at once (more answer 503
//! `busy`); the last [`KEPT`] finished ones are kept for polling. Only the caller who sent a task (same user) and admins see it; for
//! anybody else it does not exist.

use super::common::blocking;
use super::state::Shared;
use super::task_table::{KEPT, TaskView};
use crate::auth::{Caller, role};
use crate::error::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use quarry_core::Principal;
use quarry_index::Cancel;

/// Runs `write` as a task of `caller`: answers its view at once (the caller answers 202 with it),
/// and runs `write` on the blocking pool with a [`Cancel`] that the server stopping cancels.
pub(super) fn spawn(
    state: &Shared,
    caller: &Principal,
    collection: &str,
    write: impl FnOnce(Cancel) -> Result<serde_json::Value, ApiError> + Send + 'static,
) -> Result<TaskView, ApiError> {
    let view = state.tasks.start(caller, collection)?;
    let cancel = Cancel::new();
    let mut stopping = state.options.stopping.clone();
    let on_stop = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            // No sender: nobody can stop this server (tests), so never.
            if stopping.wait_for(|s| *s).await.is_ok() {
                cancel.cancel();
            }
        })
    };
    let state = state.clone();
    let id = view.task_id.clone();
    tokio::spawn(async move {
        let outcome = blocking(move || write(cancel)).await;
        on_stop.abort();
        if let Err(e) = &outcome {
            tracing::warn!(task_id = %id, code = e.code, "task failed: {}", e.message);
        }
        state.tasks.finish(&id, outcome);
    });
    Ok(view)
}

/// `GET /v1/tasks/{id}`.
#[utoipa::path(
    get,
    path = "/v1/tasks/{id}",
    operation_id = "get_task",
    tag = "documents",
    summary = "A write sent with `wait=false`",
    params(("id" = String, Path, description = "the task id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the task", body = super::task_table::TaskView),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the writer role", body = crate::error::ErrorBody),
        (status = 404, description = "`task_not_found`", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn get(
    caller: Caller<role::Writer>,
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    state
        .tasks
        .get(&id, &caller.principal)
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                "task_not_found",
                format!("no task `{id}` of this caller; tasks are kept in memory until the server stops, and the last {KEPT} finished ones"),
            )
        })
}

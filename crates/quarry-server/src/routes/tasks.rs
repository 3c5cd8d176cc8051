//! Writes sent with `wait=false`: `POST .../documents?wait=false` answers 202 with a task id at
//! once, and `GET /v1/tasks/{id}` tells how the write went. A task is not bounded by
//! `server.request_timeout_ms` (that is what it is for); it is cancelled, committing nothing, when
//! the server stops before its commit began.
//!
//! Tasks live in the server's memory, not in the catalog: after a restart their ids are unknown
//! (404), and a task that had not committed before the stop committed nothing, so a client that
//! cannot find its task sends the write again (upserts are idempotent). At most
//! [`MAX_PENDING`] tasks wait or run at once (more answer 503 `busy`); the last [`KEPT`] finished
//! ones are kept for polling. Only the caller who sent a task (same user) and admins see it; for
//! anybody else it does not exist.

use super::{Shared, blocking};
use crate::auth::{Caller, role};
use crate::error::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use quarry_core::Principal;
use quarry_index::Cancel;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Tasks waiting or running at once; one more is refused with 503 `busy`.
pub const MAX_PENDING: usize = 64;
/// Finished tasks kept for polling (the oldest are forgotten first).
pub const KEPT: usize = 10_000;

/// A task as a client sees it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    pub task_id: String,
    pub kind: &'static str,
    pub collection: String,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub state: &'static str,
    pub created_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// The write's summary, once it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<serde_json::Value>,
    /// `{"code", "message"}`, once it failed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

struct Task {
    owner: String,
    view: TaskView,
}

/// The server's tasks.
#[derive(Default)]
pub struct Tasks {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Task>,
    /// Finished task ids, oldest first.
    finished: VecDeque<String>,
    pending: usize,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Tasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a running task of `owner`, or refuses when [`MAX_PENDING`] are running.
    fn start(&self, owner: &Principal, collection: &str) -> Result<TaskView, ApiError> {
        let mut inner = self.lock();
        if inner.pending >= MAX_PENDING {
            return Err(ApiError::new(
                "busy",
                format!(
                    "{MAX_PENDING} writes sent with wait=false are still running; poll them, then send this again"
                ),
            ));
        }
        inner.pending += 1;
        let view = TaskView {
            task_id: uuid::Uuid::new_v4().to_string(),
            kind: "upsert",
            collection: collection.to_string(),
            state: "running",
            created_at: now(),
            finished_at: None,
            summary: None,
            error: None,
        };
        inner.by_id.insert(
            view.task_id.clone(),
            Task {
                owner: owner.user.clone(),
                view: view.clone(),
            },
        );
        Ok(view)
    }

    fn finish(&self, id: &str, outcome: Result<serde_json::Value, ApiError>) {
        let mut inner = self.lock();
        inner.pending = inner.pending.saturating_sub(1);
        if let Some(task) = inner.by_id.get_mut(id) {
            let view = &mut task.view;
            view.finished_at = Some(now());
            match outcome {
                Ok(summary) => {
                    view.state = "succeeded";
                    view.summary = Some(summary);
                }
                Err(e) => {
                    view.state = if e.code == "cancelled" {
                        "cancelled"
                    } else {
                        "failed"
                    };
                    view.error = Some(serde_json::json!({"code": e.code, "message": e.message}));
                }
            }
        }
        inner.finished.push_back(id.to_string());
        while inner.finished.len() > KEPT {
            if let Some(old) = inner.finished.pop_front() {
                inner.by_id.remove(&old);
            }
        }
    }

    /// The task `id` as `caller` may see it: its own, or any for an admin.
    fn get(&self, id: &str, caller: &Principal) -> Option<TaskView> {
        let inner = self.lock();
        let task = inner.by_id.get(id)?;
        (caller.sees_all() || task.owner == caller.user).then(|| task.view.clone())
    }
}

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
pub async fn get(
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

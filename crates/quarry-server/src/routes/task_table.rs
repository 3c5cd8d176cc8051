//! The table of writes sent with `wait=false` ([`Tasks`]): each task's owner and client view
//! ([`TaskView`]), at most [`MAX_PENDING`] waiting or running at once, the last [`KEPT`] finished
//! ones kept for polling. It lives in the server's memory only.

use crate::error::ApiError;
use quarry_core::Principal;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Tasks waiting or running at once; one more is refused with 503 `busy`.
pub(super) const MAX_PENDING: usize = 64;
/// Finished tasks kept for polling (the oldest are forgotten first).
pub(super) const KEPT: usize = 10_000;

/// A task as a client sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(super) struct TaskView {
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
pub(crate) struct Tasks {
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
    pub(super) fn start(&self, owner: &Principal, collection: &str) -> Result<TaskView, ApiError> {
        let mut inner = self.lock();
        if inner.pending >= MAX_PENDING {
            return Err(ApiError::new(
                "busy",
                format!(
                    "{MAX_PENDING} writes sent with wait=false are still running; poll them, then send this again"
                ),
            )
            .retry_after(1));
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

    pub(super) fn finish(&self, id: &str, outcome: Result<serde_json::Value, ApiError>) {
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
    pub(super) fn get(&self, id: &str, caller: &Principal) -> Option<TaskView> {
        let inner = self.lock();
        let task = inner.by_id.get(id)?;
        (caller.sees_all() || task.owner == caller.user).then(|| task.view.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_core::Role;

    #[test]
    fn a_full_table_refuses_with_busy_and_a_retry_after() {
        let tasks = Tasks::default();
        let owner = Principal::new("u", vec![], Role::Writer);
        for _ in 0..MAX_PENDING {
            tasks.start(&owner, "c").unwrap();
        }
        let e = tasks.start(&owner, "c").unwrap_err();
        assert_eq!((e.code, e.retry_after), ("busy", Some(1)));
    }
}

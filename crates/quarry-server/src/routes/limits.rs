//! What bounds a request: the layer that cancels a write not yet committing when
//! `server.request_timeout_ms` runs out or the server stops ([`timeout_layer`]).

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use quarry_index::Cancel;
use std::time::Duration;

/// What bounds a request: its time, and the server stopping.
#[derive(Clone)]
pub(super) struct Limits {
    pub(super) timeout: Duration,
    pub(super) stopping: tokio::sync::watch::Receiver<bool>,
}

/// Bounds every request by `server.request_timeout_ms` and by the server stopping. A write
/// handler takes the request's [`Cancel`] (an extension): when the time runs out, or the server
/// stops, before the write began its commit, the write is cancelled and commits nothing, and the
/// answer is 504 `timeout` (503 `cancelled` when stopping); once it began committing, its own
/// answer is awaited instead, so a request never answers "timed out" and commits afterwards.
pub(super) async fn timeout_layer(
    State(limits): State<Limits>,
    mut req: Request,
    next: Next,
) -> Response {
    let cancel = Cancel::new();
    req.extensions_mut().insert(cancel.clone());
    let run = next.run(req);
    tokio::pin!(run);
    let mut stopping = limits.stopping.clone();
    let stop = async move {
        // An error means nobody can signal a stop (no sender: an app without a shutdown
        // signal, as in tests): never stopping.
        if stopping.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        resp = &mut run => return resp,
        _ = tokio::time::sleep(limits.timeout) => {
            if cancel.cancel() {
                return ApiError::new(
                    "timeout",
                    format!(
                        "the request took longer than {} ms; nothing of it was written",
                        limits.timeout.as_millis()
                    ),
                )
                .into_response();
            }
        }
        _ = stop => {
            if cancel.cancel() {
                return ApiError::new(
                    "cancelled",
                    "the server is stopping; nothing of this request was written. Send it again",
                )
                .retry_after(5)
                .into_response();
            }
        }
    }
    // The write is committing: its answer comes after the commit.
    run.await
}

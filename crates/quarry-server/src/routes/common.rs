//! What every handler shares besides the state: running engine work on the blocking pool, with
//! a failed task answered as an `internal` error, and searches bounded by
//! `server.max_concurrent_queries` ([`search_work`]).

use super::state::Shared;
use crate::error::ApiError;

/// Runs blocking engine work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "engine task failed");
        ApiError::new(
            "internal",
            "internal error; the server log has the details under this request id",
        )
    })?
}

/// Runs a search's engine work on the blocking pool once one of the
/// `server.max_concurrent_queries` slots is free. Waiting costs no thread: a request whose time
/// runs out while it waits answers 504 and never runs. The slot moves into the blocking task, so
/// a search that outlives its request's 504 keeps its slot until it ends, and the searches
/// running never outnumber the slots. `quarry_searches_waiting` and `quarry_searches_running`
/// count both, whichever way a wait or a run ends.
pub(crate) async fn search_work<T: Send + 'static>(
    state: &Shared,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let telemetry = state.engine.telemetry();
    let wait = telemetry.search_waiting();
    // the semaphore is never closed: an error here cannot happen, and would be a bug
    let slot = state
        .search_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "search slots closed");
            ApiError::new(
                "internal",
                "internal error; the server log has the details under this request id",
            )
        })?;
    drop(wait);
    let run = telemetry.search_running();
    blocking(move || {
        let _held = (slot, run);
        f()
    })
    .await
}

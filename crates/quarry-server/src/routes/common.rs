//! What every handler shares besides the state: running engine work on the blocking pool, with
//! a failed task answered as an `internal` error.

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

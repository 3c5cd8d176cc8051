//! `POST /v1/snapshots` (admin): a consistent copy of the data directory
//! ([`Engine::snapshot`](quarry_index::Engine::snapshot)), taken while the server serves and
//! writes, into the server's snapshot folder (`server.snapshot_dir`; by default
//! `<data-dir>-snapshots` beside the data directory). A caller names the snapshot, never a path.

use super::common::blocking;
use super::state::Shared;
use crate::auth::{Caller, role};
use crate::error::ApiError;
use crate::extract::OptionalJsonBody;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use quarry_index::engine::snapshot;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SnapshotRequest {
    /// The snapshot's folder name: 1 to 64 of `[A-Za-z0-9_-]`; default: the UTC time,
    /// `YYYYMMDD-HHMMSS-mmm`.
    pub name: Option<String>,
}

pub(super) async fn create(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    cancel: Option<axum::Extension<quarry_index::Cancel>>,
    OptionalJsonBody(req): OptionalJsonBody<SnapshotRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let name = match req.name {
        Some(name) => {
            snapshot::check_name(&name)?;
            name
        }
        None => snapshot::timestamp_name(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        ),
    };
    let summary = blocking(move || {
        let dir = state
            .options
            .snapshot_dir
            .clone()
            .unwrap_or_else(|| snapshot::default_dir(state.engine.dir()));
        let cancel = cancel.map(|c| c.0);
        Ok(state.engine.snapshot(&dir.join(&name), cancel.as_ref())?)
    })
    .await?;
    let name = summary
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let mut body = serde_json::to_value(&summary).map_err(|e| {
        tracing::error!(error = %e, "snapshot summary does not serialise");
        ApiError::new("internal", "internal error; the server log has the details")
    })?;
    if let Some(o) = body.as_object_mut() {
        o.insert("name".into(), name.into());
    }
    Ok((StatusCode::CREATED, Json(body)))
}

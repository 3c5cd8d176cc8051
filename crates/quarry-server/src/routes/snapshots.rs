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

#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SnapshotRequest {
    /// The snapshot's folder name: 1 to 64 of `[A-Za-z0-9_-]`; default: the UTC time,
    /// `YYYYMMDD-HHMMSS-mmm`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/snapshots",
    operation_id = "create_snapshot",
    tag = "snapshots",
    summary = "A consistent copy of the data directory into the snapshot folder",
    request_body(content = SnapshotRequest, description = "optional: an empty body takes the default name"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "the snapshot: `name`, `path`, `created_at`, `collections`, `files`, `bytes`, `seconds`", body = SnapshotAnswer),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: the caller lacks the admin role", body = crate::error::ErrorBody),
        (status = 409, description = "`conflict`: a snapshot of that name exists", body = crate::error::ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over `server.body_limit_bytes`", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn create(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    cancel: Option<axum::Extension<quarry_index::Cancel>>,
    OptionalJsonBody(req): OptionalJsonBody<SnapshotRequest>,
) -> Result<(StatusCode, Json<SnapshotAnswer>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(SnapshotAnswer { summary, name })))
}

/// `POST /v1/snapshots`: what was made, and the snapshot's name (its folder's).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct SnapshotAnswer {
    #[serde(flatten)]
    summary: snapshot::SnapshotSummary,
    name: Option<String>,
}

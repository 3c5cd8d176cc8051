//! `POST /v1/collections/{c}/query`: hits of the documents the caller may read.

use super::common::blocking;
use super::state::Shared;
use crate::auth::{Caller, role};
use crate::error::ApiError;
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::{Path, State};
use quarry_core::query::{QueryDefaults, QueryRequest};
use quarry_index::eval::mode_name;
use quarry_index::{QueryOutcome, SearchResponse};
use std::time::Instant;

pub(super) async fn query(
    caller: Caller<role::Reader>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    JsonBody(req): JsonBody<QueryRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    let started = Instant::now();
    let explicit_fusion = req.fusion.is_some();
    let d = &state.options;
    let q = req.options(QueryDefaults {
        top_k: d.default_top_k,
        mode: d.default_mode,
        group_by: d.default_group_by,
    });
    let mode = q.as_ref().map_or(state.options.default_mode, |q| q.mode);
    let answer = blocking(move || {
        // A query of a collection that does not exist is not counted: its name is the caller's.
        let searcher = state.engine.searcher(&collection)?;
        let answer = q
            .map(|mut q| {
                if !explicit_fusion {
                    q.fusion = searcher.default_fusion();
                }
                q
            })
            .map_err(quarry_index::Error::from)
            .and_then(|q| searcher.search(&q, &caller.principal));
        let outcome = match &answer {
            Ok(a) if a.degraded => QueryOutcome::Degraded,
            Ok(_) => QueryOutcome::Ok,
            Err(e) if e.kind() == quarry_index::ErrorKind::Input => QueryOutcome::Invalid,
            Err(_) => QueryOutcome::Error,
        };
        state.engine.telemetry().observe_query(
            &collection,
            mode_name(mode),
            outcome,
            started.elapsed().as_secs_f64(),
        );
        Ok(answer?)
    })
    .await?;
    Ok(Json(answer))
}

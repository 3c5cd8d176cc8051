//! Golden sets and evaluation runs of live collections (admin):
//! `GET /v1/collections/{c}/golden`, `PUT|DELETE /v1/collections/{c}/golden/{name}`,
//! `POST /v1/collections/{c}/eval` (runs a golden set, as a named reader or as the caller, and
//! records the run), `GET /v1/collections/{c}/eval/runs` and
//! `GET /v1/collections/{c}/eval/compare?base=A&run=B[&mode=M]` (two recorded runs of the
//! collection compared, as `quarry eval compare A B --json` prints it).

use super::common::blocking;
use super::state::Shared;
use crate::auth::{Caller, role};
use crate::error::ApiError;
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use quarry_core::{Fusion, Mode, Principal, Role};
use quarry_index::catalog::GoldenQuery;
use std::collections::BTreeMap;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GoldenLine {
    pub id: Option<String>,
    pub query: String,
    pub relevant: BTreeMap<String, u32>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PutGolden {
    pub queries: Vec<GoldenLine>,
}

pub(super) async fn list_golden(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let sets = blocking(move || {
        state.engine.collection(&collection)?;
        Ok(state.engine.golden_sets(Some(&collection))?)
    })
    .await?;
    Ok(Json(serde_json::json!({ "golden_sets": sets })))
}

pub(super) async fn put_golden(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path((collection, name)): Path<(String, String)>,
    JsonBody(req): JsonBody<PutGolden>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut queries = Vec::with_capacity(req.queries.len());
    let mut ids = std::collections::HashSet::new();
    for (i, q) in req.queries.into_iter().enumerate() {
        if q.query.trim().is_empty() {
            return Err(ApiError::new(
                "invalid_request",
                format!("queries[{i}]: the query is empty"),
            ));
        }
        let id = q.id.unwrap_or_else(|| (i + 1).to_string());
        if !ids.insert(id.clone()) {
            return Err(ApiError::new(
                "invalid_request",
                format!("queries[{i}]: id {id} appears twice"),
            ));
        }
        queries.push(GoldenQuery {
            id,
            query: q.query,
            relevant: q.relevant,
        });
    }
    let n = queries.len();
    blocking(move || Ok(state.engine.put_golden(&collection, &name, &queries)?)).await?;
    Ok(Json(serde_json::json!({ "queries": n })))
}

pub(super) async fn delete_golden(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path((collection, name)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(move || Ok(state.engine.delete_golden(&collection, &name)?)).await?;
    Ok(Json(serde_json::json!({ "deleted": true })))
}

/// The reader a run is evaluated as (`as`): its ACLs apply to the run.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunAs {
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EvalRequest {
    pub golden: String,
    pub modes: Option<Vec<Mode>>,
    pub fusion: Option<Fusion>,
    pub top_k: Option<usize>,
    /// Rerank each query's first this many documents (docs/query.md, "Reranking").
    pub rerank_top_n: Option<usize>,
    #[serde(rename = "as")]
    pub run_as: Option<RunAs>,
}

pub(super) async fn run(
    caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    JsonBody(req): JsonBody<EvalRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let principal = match req.run_as {
        Some(r) => Principal::checked(r.user, r.groups, Role::Reader).map_err(|b| {
            let why = format!("`as`: {:?} is not a valid user or group id", b.id);
            ApiError::new("invalid_request", why)
        })?,
        None => caller.principal.clone(),
    };
    let top_k = req.top_k.unwrap_or(100);
    if !(1..=quarry_core::MAX_TOP_K).contains(&top_k) {
        return Err(ApiError::new(
            "invalid_request",
            format!("`top_k` {top_k}: use 1 to {}", quarry_core::MAX_TOP_K),
        ));
    }
    if let Some(f) = &req.fusion {
        f.validate()?;
    }
    let answer = blocking(move || {
        let mut plan = state.engine.default_plan(&collection, top_k)?;
        if let Some(modes) = req.modes {
            plan.modes = modes;
        }
        if let Some(fusion) = req.fusion {
            plan.fusion = fusion;
        }
        plan.rerank_top_n = req.rerank_top_n;
        let (run, measured) =
            state
                .engine
                .evaluate_golden(&collection, &req.golden, &plan, &principal, "http")?;
        Ok(serde_json::json!({
            "run_id": run.id, "collection": collection, "golden": req.golden,
            "principal": principal, "fusion": plan.fusion, "rerank_top_n": plan.rerank_top_n, "modes": measured.reports,
        }))
    })
    .await?;
    Ok(Json(answer))
}

pub(super) async fn runs(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let runs = blocking(move || {
        state.engine.collection(&collection)?;
        Ok(state.engine.eval_runs(Some(&collection))?)
    })
    .await?;
    Ok(Json(serde_json::json!({ "runs": runs })))
}

/// `GET /v1/collections/{c}/eval/report[?mode=M]`: the HTML report of the collection's recorded
/// runs, as `quarry eval report` writes it (self-contained: inline CSS and SVG, no script).
pub(super) async fn report(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    axum::extract::Query(params): axum::extract::Query<ReportParams>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let report = blocking(move || {
        state.engine.collection(&collection)?;
        quarry_index::eval::report::latest(&state.engine, Some(&collection), params.mode.as_deref())?
            .ok_or_else(|| {
                ApiError::new(
                    "not_found",
                    format!(
                        "collection {collection} has no recorded eval run; POST /v1/collections/{collection}/eval records one"
                    ),
                )
            })
    })
    .await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                axum::http::header::HeaderName::from_static("content-security-policy"),
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
            ),
        ],
        report.html,
    )
        .into_response())
}

/// `?mode=M` of a report.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportParams {
    /// Only this mode in the comparison [default: every mode].
    pub mode: Option<String>,
}

/// `?base=A&run=B[&mode=M]` of a comparison.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CompareParams {
    /// The baseline run.
    pub base: String,
    /// The run compared with it.
    pub run: String,
    /// Only this mode [default: every mode both runs measured].
    pub mode: Option<String>,
}

/// Run `run` compared with the baseline `base`, both runs of the collection (another
/// collection's run is not found here).
pub(super) async fn compare(
    _caller: Caller<role::Admin>,
    State(state): State<Shared>,
    Path(collection): Path<String>,
    params: Result<Query<CompareParams>, QueryRejection>,
) -> Result<Json<quarry_index::eval::Comparison>, ApiError> {
    let Query(params) = params.map_err(|e| {
        ApiError::new(
            "invalid_request",
            format!("{}; use ?base=RUN&run=RUN[&mode=MODE]", e.body_text()),
        )
    })?;
    let comparison = blocking(move || {
        state.engine.collection(&collection)?;
        let run = |id: &str| {
            let run = state.engine.eval_run(id)?;
            if run.summary.collection != collection {
                return Err(quarry_index::Error::NotFound {
                    what: "eval run",
                    id: format!("{collection}/{id}"),
                });
            }
            Ok(run)
        };
        let (base, run) = (run(&params.base)?, run(&params.run)?);
        Ok(quarry_index::eval::compare(
            &base,
            &run,
            params.mode.as_deref(),
        )?)
    })
    .await?;
    Ok(Json(comparison))
}

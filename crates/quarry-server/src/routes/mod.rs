//! The router: routes, shared state, and the layers every request passes (request id, tracing,
//! body limit, timeout, JSON fallbacks, and authentication for `/v1`).
//!
//! Every `/v1` route authenticates its caller ([`crate::auth::authenticate`]) and needs a role,
//! stated by the `Caller<role::..>` its handler takes:
//!
//! | route | role |
//! |---|---|
//! | `GET /v1/collections`, `GET /v1/collections/{c}` | reader |
//! | `POST /v1/collections/{c}/query` | reader |
//! | `GET /v1/collections/{c}/documents`, `GET /v1/collections/{c}/documents/{id}` | reader |
//! | `POST /v1/embeddings` | reader |
//! | `POST /v1/collections/{c}/documents`, `DELETE /v1/collections/{c}/documents/{id}` | writer |
//! | `GET /v1/tasks/{id}` (the caller's own tasks; an admin's: all) | writer |
//! | `GET /v1/collections/{c}/versions` | admin |
//! | `GET /v1/collections/{c}/golden`, `PUT`/`DELETE /v1/collections/{c}/golden/{name}` | admin |
//! | `POST /v1/collections/{c}/eval`, `GET /v1/collections/{c}/eval/runs`, `GET /v1/collections/{c}/eval/compare` | admin |
//! | `POST /v1/collections/{c}/reindex`, `GET /v1/jobs`, `GET /v1/jobs/{id}`, `POST /v1/jobs/{id}/cancel` | admin |
//! | `POST /v1/collections/{c}/versions/{id}/activate`, `.../retire` | admin |
//! | `PUT /v1/collections/{c}`, `DELETE /v1/collections/{c}` | admin |
//! | `DELETE /v1/collections/{c}/documents/{id}?forget=true` | admin |
//! | `POST /v1/snapshots` | admin |
//!
//! Admins also differ from writers in what they read (every document, whatever its ACL). `/healthz`, `/readyz` and `/metrics` are open. The tracing span of a request records its
//! id, method and path only: never headers (the token) or the query string.

mod collections;
mod documents;
mod embeddings;
mod eval;
mod jobs;
mod query;
#[cfg(test)]
mod query_fuzz_tests;
mod snapshots;
mod tasks;

use crate::auth::{self, Auth};
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use quarry_core::{GroupBy, Mode};
use quarry_index::{Cancel, Engine, IngestOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

/// Server settings (`[server]` and `[query]` in `quarry.toml`).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    pub default_top_k: usize,
    pub default_mode: Mode,
    pub default_group_by: GroupBy,
    /// Ingest settings for the documents API (its `collection` is taken from the route).
    pub ingest: IngestOptions,
    /// Who may call `/v1` (off by default: every caller is the local admin).
    pub auth: Auth,
    /// What `/readyz` says: set once every collection is open ([`crate::refresh_loop`]).
    pub ready: Arc<AtomicBool>,
    /// Turns true when the server starts stopping: writes not yet committing are cancelled.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Where `POST /v1/snapshots` writes (`server.snapshot_dir`); `None`: `<data-dir>-snapshots`
    /// beside the data directory.
    pub snapshot_dir: Option<std::path::PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            body_limit_bytes: 8 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            default_top_k: 10,
            default_mode: Mode::Hybrid,
            default_group_by: GroupBy::Chunk,
            ingest: IngestOptions::default(),
            auth: Auth::off(),
            ready: Arc::new(AtomicBool::new(true)),
            stopping: tokio::sync::watch::channel(false).1,
            snapshot_dir: None,
        }
    }
}

/// State shared by all handlers.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub options: ServerOptions,
    /// Writes sent with `wait=false`.
    tasks: tasks::Tasks,
}

type Shared = Arc<AppState>;

/// Runs blocking engine work on the blocking pool.
async fn blocking<T: Send + 'static>(
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

/// The whole application; `/readyz` answers from `options.ready`.
pub fn router(engine: Arc<Engine>, options: ServerOptions) -> Router {
    let limits = Limits {
        timeout: options.request_timeout,
        stopping: options.stopping.clone(),
    };
    let body_limit = options.body_limit_bytes;
    let state: Shared = Arc::new(AppState {
        engine,
        options,
        tasks: tasks::Tasks::default(),
    });
    let auth = state.options.auth.clone();
    let x_request_id = HeaderName::from_static("x-request-id");
    let v1 = Router::new()
        .route("/collections", get(collections::list))
        .route(
            "/collections/{collection}",
            get(collections::stats)
                .put(collections::create)
                .delete(collections::delete),
        )
        .route("/collections/{collection}/query", post(query::query))
        .route(
            "/collections/{collection}/versions",
            get(collections::versions),
        )
        .route(
            "/collections/{collection}/versions/{id}/activate",
            post(jobs::activate),
        )
        .route(
            "/collections/{collection}/versions/{id}/retire",
            post(jobs::retire),
        )
        .route("/collections/{collection}/reindex", post(jobs::reindex))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/collections/{collection}/golden", get(eval::list_golden))
        .route(
            "/collections/{collection}/golden/{name}",
            put(eval::put_golden).delete(eval::delete_golden),
        )
        .route("/collections/{collection}/eval", post(eval::run))
        .route("/collections/{collection}/eval/runs", get(eval::runs))
        .route("/collections/{collection}/eval/compare", get(eval::compare))
        .route(
            "/collections/{collection}/documents",
            get(documents::list).post(documents::upsert),
        )
        .route(
            "/collections/{collection}/documents/{*doc_id}",
            get(documents::get).delete(documents::delete),
        )
        .route("/tasks/{id}", get(tasks::get))
        .route("/embeddings", post(embeddings::embeddings))
        .route("/snapshots", post(snapshots::create))
        .route_layer(middleware::from_fn_with_state(auth, auth::authenticate));
    Router::new()
        .route("/healthz", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/v1", v1)
        .fallback(|| async { ApiError::new("route_not_found", "no such route; see the HTTP reference in the README") })
        .method_not_allowed_fallback(|| async { ApiError::new("method_not_allowed", "this route does not take that method") })
        .layer(middleware::from_fn_with_state(limits, timeout_layer))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .with_state(state)
}

async fn readyz(State(state): State<Shared>) -> Response {
    if state.options.ready.load(Ordering::Relaxed) {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        ApiError::new(
            "not_ready",
            "collections are still opening (or failed to open: the server log says why)",
        )
        .into_response()
    }
}

/// `GET /metrics`: the engine's telemetry in the OpenMetrics text format (Prometheus scrapes it).
/// Open like `/healthz`: it names collections and golden sets, never documents or queries.
async fn metrics(State(state): State<Shared>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.engine.telemetry().encode(),
    )
        .into_response()
}

/// What bounds a request: its time, and the server stopping.
#[derive(Clone)]
struct Limits {
    timeout: Duration,
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// Bounds every request by `server.request_timeout_ms` and by the server stopping. A write
/// handler takes the request's [`Cancel`] (an extension): when the time runs out, or the server
/// stops, before the write began its commit, the write is cancelled and commits nothing, and the
/// answer is 504 `timeout` (503 `cancelled` when stopping); once it began committing, its own
/// answer is awaited instead, so a request never answers "timed out" and commits afterwards.
async fn timeout_layer(State(limits): State<Limits>, mut req: Request, next: Next) -> Response {
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
                .into_response();
            }
        }
    }
    // The write is committing: its answer comes after the commit.
    run.await
}

//! The router: routes, and the layers every request passes (request id, tracing,
//! body limit, timeout, JSON fallbacks, and authentication for `/v1`).
//!
//! Every `/v1` route authenticates its caller ([`crate::auth::authenticate`]) and needs a role,
//! stated by the `Caller<role::..>` its handler takes:
//!
//! | route | role |
//! |---|---|
//! | `GET /v1/collections`, `GET /v1/collections/{c}` | reader |
//! | `POST /v1/collections/{c}/query`, `POST /v1/collections/{c}/query/batch` | reader |
//! | `GET /v1/collections/{c}/documents`, `GET /v1/collections/{c}/documents/{id}` | reader |
//! | `POST /v1/embeddings`, `GET /v1/models`, `GET /v1/models/{id}` | reader |
//! | `POST /v1/collections/{c}/documents`, `DELETE /v1/collections/{c}/documents/{id}` | writer |
//! | `GET /v1/tasks/{id}` (the caller's own tasks; an admin's: all) | writer |
//! | `GET /v1/collections/{c}/versions` | admin |
//! | `GET /v1/collections/{c}/golden`, `PUT`/`DELETE /v1/collections/{c}/golden/{name}` | admin |
//! | `POST /v1/collections/{c}/eval`, `GET /v1/collections/{c}/eval/runs`, `GET /v1/collections/{c}/eval/compare`, `GET /v1/collections/{c}/eval/report` | admin |
//! | `POST /v1/collections/{c}/reindex`, `GET /v1/jobs`, `GET /v1/jobs/{id}`, `POST /v1/jobs/{id}/cancel` | admin |
//! | `POST /v1/collections/{c}/versions/{id}/activate`, `.../retire` | admin |
//! | `PUT`, `PATCH`, `DELETE /v1/collections/{c}` | admin |
//! | `DELETE /v1/collections/{c}/documents/{id}?forget=true` | admin |
//! | `POST /v1/snapshots` | admin |
//!
//! Admins also differ from writers in what they read (every document, whatever its ACL). `/healthz`, `/readyz`, `/metrics`, the playground page `/` (which holds no data; it calls the routes above with the token typed into it), `/openapi.json` (the OpenAPI document, [`openapi`]) and `/docs` (its operations as a page) are open. The tracing span of a request records its
//! id, method and path only: never headers (the token) or the query string.

mod api_doc;
mod collections;
mod common;
mod docs;
#[cfg(test)]
mod docs_tests;
mod documents;
#[cfg(test)]
mod documents_tests;
mod embeddings;
mod eval;
#[cfg(test)]
mod fallback_tests;
mod jobs;
mod limits;
mod playground;
mod probes;
mod query;
#[cfg(test)]
mod query_fuzz_tests;
#[cfg(test)]
mod search_slots_tests;
mod snapshots;
mod state;
mod task_table;
mod tasks;
mod wire;

pub use api_doc::{openapi, openapi_json};
pub use state::{AppState, ServerOptions, default_concurrent_queries};

use crate::auth;
use crate::error::ApiError;
use axum::Router;
use axum::extract::Request;
use axum::http::HeaderName;
use axum::middleware;
use axum::routing::{get, post, put};
use limits::Limits;
use quarry_index::Engine;
use state::Shared;
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

/// The whole application; `/readyz` answers from `options.ready`.
pub fn router(engine: Arc<Engine>, options: ServerOptions) -> Router {
    routes(Arc::new(AppState::new(engine, options)))
}

/// The application over `state` (tests hold its search slots).
fn routes(state: Shared) -> Router {
    let limits = Limits {
        timeout: state.options.request_timeout,
        stopping: state.options.stopping.clone(),
    };
    let body_limit = state.options.body_limit_bytes;
    let auth = state.options.auth.clone();
    let x_request_id = HeaderName::from_static("x-request-id");
    let v1 = Router::new()
        .route("/collections", get(collections::list))
        .route(
            "/collections/{collection}",
            get(collections::stats)
                .put(collections::create)
                .patch(collections::patch)
                .delete(collections::delete),
        )
        .route("/collections/{collection}/query", post(query::query))
        .route("/collections/{collection}/query/batch", post(query::batch))
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
        .route("/collections/{collection}/eval/report", get(eval::report))
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
        .route("/models", get(embeddings::models))
        .route("/models/{id}", get(embeddings::model))
        .route("/snapshots", post(snapshots::create))
        .route_layer(middleware::from_fn_with_state(auth, auth::authenticate));
    Router::new()
        .route("/", get(playground::page))
        .route("/healthz", get(probes::healthz))
        .route("/openapi.json", get(docs::spec))
        .route("/docs", get(docs::page))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
        .nest("/v1", v1)
        .fallback(|| async { ApiError::new("route_not_found", "no such route; see the HTTP reference in docs/http-api.md") })
        .method_not_allowed_fallback(|| async { ApiError::new("method_not_allowed", "this route does not take that method") })
        .layer(middleware::from_fn_with_state(limits, limits::timeout_layer))
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
        .layer(axum::Extension(docs::Pages::new(
            &api_doc::openapi(),
            api_doc::openapi_json(),
        )))
        .with_state(state)
}

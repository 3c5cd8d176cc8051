//! quarry-server: the HTTP API over an [`Engine`](quarry_index::Engine).
//!
//! [`router`] builds the whole axum application (tests drive it over a real socket); [`serve`] runs
//! it with graceful shutdown. [`auth`] authenticates callers and checks their roles; every engine
//! call is made with the caller's principal. Handlers are thin adapters: parse, one engine call on the blocking
//! pool, map the result. Errors become `{"error": {"code", "message", "type", "param"}}` through one table in
//! [`error`].

pub mod auth;
pub mod error;
mod extract;
mod routes;
pub mod schedule;
pub mod views;

pub use auth::Auth;
pub use error::ApiError;
pub use routes::{
    AppState, ServerOptions, default_concurrent_queries, openapi, openapi_json, router,
};
pub use schedule::{canary_loop, eval_loop, job_loop, refresh_loop};

use std::future::Future;
use tokio::net::TcpListener;

/// Serves `app` on `listener` until `shutdown` resolves, then drains in-flight requests for at
/// most `grace`, and returns without those still running after it.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
) -> std::io::Result<()> {
    let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = signalled.send(true);
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let deadline = async move {
        if on_signal.wait_for(|s| *s).await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        done = server => done,
        _ = deadline => {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "requests still running after the shutdown grace period; stopping without them"
            );
            Ok(())
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

//! quarry-server: the HTTP API over an [`Engine`](quarry_index::Engine).
//!
//! [`router`] builds the whole axum application (tests drive it over a real socket); [`serve`] runs
//! it with graceful shutdown. [`auth`] authenticates callers and checks their roles; every engine
//! call is made with the caller's principal. Handlers are thin adapters: parse, one engine call on the blocking
//! pool, map the result. Errors become `{"error": {"code", "message"}}` through one table in
//! [`error`].

pub mod auth;
pub mod error;
mod extract;
mod routes;
pub mod schedule;

pub use auth::Auth;
pub use error::ApiError;
pub use routes::{AppState, ServerOptions, router};
pub use schedule::{canary_loop, eval_loop, job_loop};

use std::future::Future;
use tokio::net::TcpListener;

/// Serves `app` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
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

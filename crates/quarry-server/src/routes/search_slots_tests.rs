//! `server.max_concurrent_queries`: a search waits for a free slot, and one whose request time
//! runs out while it waits answers 504 without having run; `/metrics` counts the waiting.

use super::routes;
use super::state::{AppState, ServerOptions};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use quarry_index::{Engine, EngineOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// A query while the only slot is held waits, then answers 504 `timeout` at the request
/// timeout (2 s); had it run, it would have answered 404 at once (its collection does not exist).
/// With the slot free the same query runs (404), and the slot the timed-out query waited for
/// was never taken: one slot is free again afterwards. `quarry_searches_waiting` is 1 during
/// the wait and 0 after the 504; `quarry_searches_running` is 0 after the run.
#[test]
fn a_query_waits_for_a_slot_and_times_out_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(dir.path(), EngineOptions::default()).unwrap());
    let options = ServerOptions {
        max_concurrent_queries: 1,
        request_timeout: Duration::from_millis(2000),
        ..ServerOptions::default()
    };
    let state = Arc::new(AppState::new(engine, options));
    let app = routes(state.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let query = |app: axum::Router| async move {
        let req = Request::post("/v1/collections/nothing/query")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"query":"anything","mode":"bm25"}"#))
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        (
            status,
            body["error"]["code"].as_str().unwrap_or("").to_string(),
        )
    };
    rt.block_on(async {
        let gauges = || {
            let text = state.engine.telemetry().encode();
            let value = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                    .map(|v| v.trim().to_string())
            };
            (
                value("quarry_searches_waiting"),
                value("quarry_searches_running"),
            )
        };
        let zero = (Some("0".to_string()), Some("0".to_string()));
        assert_eq!(gauges(), zero);
        let held = state.search_slots.clone().try_acquire_owned().unwrap();
        let started = Instant::now();
        let waiting = tokio::spawn(query(app.clone()));
        // the spawned query reaches its wait (well within its 2 s)
        while gauges().0.as_deref() != Some("1") && started.elapsed() < Duration::from_millis(1500)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(gauges(), (Some("1".to_string()), Some("0".to_string())));
        let (status, code) = waiting.await.unwrap();
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::GATEWAY_TIMEOUT, "timeout")
        );
        assert!(started.elapsed() >= Duration::from_millis(2000));
        assert_eq!(gauges(), zero);
        drop(held);
        let (status, code) = query(app.clone()).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::NOT_FOUND, "collection_not_found")
        );
        assert_eq!(state.search_slots.available_permits(), 1);
        assert_eq!(gauges(), zero);
    });
}

//! The query route's request body, as a client sends it: `POST /v1/collections/c/query` with the
//! input as the body, through the whole router (JSON parsing with unknown fields refused, the
//! `filter` check, `QueryOptions` and fusion validation, the search itself) on an engine holding a
//! few documents. Any answer but a 500 is fine: a panic in the handler's blocking task becomes a
//! 500, and so would an internal error, which no request body should cause.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use quarry_index::{Engine, EngineOptions, IngestOptions};
use std::sync::Arc;
use tower::ServiceExt;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Arc::new(Engine::open(dir.path(), EngineOptions::default()).expect("engine"));
    let docs = (0..20)
        .map(|i| {
            serde_json::json!({"id": format!("d{i}"), "title": format!("Doc {i}"),
                "text": format!("w{i}x lantern harbor granite {} river stone", i % 3)})
        })
        .collect();
    let opts = IngestOptions {
        collection: "c".into(),
        ..IngestOptions::default()
    };
    quarry_index::ingest::ingest_records(&engine, docs, &opts, "fuzz").expect("seed documents");
    let router = quarry_server::router(engine, quarry_server::ServerOptions::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    // (a panic is the end of the run: nothing shared is used after it)
    let (router, rt) = (
        std::panic::AssertUnwindSafe(router),
        std::panic::AssertUnwindSafe(rt),
    );
    afl::fuzz!(|data: &[u8]| {
        let (router, rt): (&axum::Router, &tokio::runtime::Runtime) = (&router, &rt);
        let req = Request::post("/v1/collections/c/query")
            .header("content-type", "application/json")
            .body(Body::from(data.to_vec()))
            .expect("request");
        let resp = rt
            .block_on(router.clone().oneshot(req))
            .expect("infallible");
        let status = resp.status();
        let body = rt
            .block_on(axum::body::to_bytes(resp.into_body(), usize::MAX))
            .expect("body");
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON answer");
        if status.is_success() {
            assert!(json["results"].is_array(), "{json}");
        } else {
            assert!(
                json["error"].is_object() || json["error"].is_string(),
                "{json}"
            );
        }
    });
    drop(dir);
}

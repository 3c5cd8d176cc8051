//! `POST .../documents?wait=false` checks the collection's name before it answers 202: a name the
//! engine refuses is a 400 at once, not a task that can only fail (found by schemathesis).

use crate::{ServerOptions, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use quarry_index::{Engine, EngineOptions};
use std::sync::Arc;
use tower::ServiceExt;

fn post(path: &str, body: &str) -> (StatusCode, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(dir.path(), EngineOptions::default()).unwrap());
    let app = router(engine, ServerOptions::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = app
            .oneshot(
                Request::post(path)
                    .body(Body::from(body.to_owned()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    })
}

#[test]
fn a_write_without_waiting_to_a_bad_collection_name_is_refused_at_once() {
    let body = r#"{"documents": [{"_id": "a", "text": "some words"}]}"#;
    for wait in ["false", "true"] {
        let (status, answer) = post(
            &format!("/v1/collections/b%C3%A4d/documents?wait={wait}"),
            body,
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "wait={wait}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("invalid collection name"), "{message}");
    }
}

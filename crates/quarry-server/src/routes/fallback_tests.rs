//! The router's fallbacks: an unknown route answers 404 `route_not_found` naming where the HTTP
//! reference lives (`docs/http-api.md`).

use crate::{ServerOptions, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use quarry_index::{Engine, EngineOptions};
use std::sync::Arc;
use tower::ServiceExt;

#[test]
fn an_unknown_route_points_to_the_http_reference() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(dir.path(), EngineOptions::default()).unwrap());
    let app = router(engine, ServerOptions::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        let resp = app
            .oneshot(
                Request::get("/v1/nothing-here")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
        )
    });
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "route_not_found");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("docs/http-api.md"), "{message}");
}

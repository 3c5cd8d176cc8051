//! `GET /openapi.json` and `GET /docs`: open, the document the handlers generate, and a page of
//! its operations under a strict Content-Security-Policy.

use crate::{ServerOptions, openapi_json, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use quarry_index::{Engine, EngineOptions};
use std::sync::Arc;
use tower::ServiceExt;

/// `GET path` on a fresh app with authentication on: status, headers and body text.
fn get(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(dir.path(), EngineOptions::default()).unwrap());
    let options = ServerOptions {
        auth: crate::Auth::new(
            vec![crate::auth::ApiKey::from_key(
                "a-key",
                quarry_core::Principal::local_admin(),
            )],
            None,
        )
        .unwrap(),
        ..ServerOptions::default()
    };
    let app = router(engine, options);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    })
}

#[test]
fn openapi_json_is_open_and_is_the_generated_document() {
    let (status, headers, body) = get("/openapi.json");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, openapi_json());
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[test]
fn docs_lists_every_operation_under_a_strict_csp() {
    let (status, headers, body) = get("/docs");
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    assert!(!body.contains("<script"), "the page has no script");
    assert!(!body.contains("QUARRY_"), "every placeholder is filled");
    let doc: serde_json::Value = serde_json::from_str(&openapi_json()).unwrap();
    for path in doc["paths"].as_object().unwrap().keys() {
        let shown = path.replace('&', "&amp;");
        assert!(body.contains(&format!("<code>{shown}</code>")), "{path}");
    }
}

//! `GET /openapi.json`, the OpenAPI document, and `GET /docs`, a page listing its operations by
//! tag (`docs/index.html` compiled in, filled from the document once, when the router is built).
//! The page has no script and loads nothing: its Content-Security-Policy allows inline style
//! only.

use axum::Extension;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName};
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::Operation;

const TEMPLATE: &str = include_str!("../docs/index.html");

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'none'";

/// The document as JSON and the page made from it.
pub(super) struct Pages {
    json: String,
    html: String,
}

impl Pages {
    pub(super) fn new(doc: &OpenApi, json: String) -> Arc<Pages> {
        Arc::new(Pages {
            json,
            html: page_html(doc),
        })
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One table per tag, one row per operation: method, path, summary, whether it needs a token.
fn page_html(doc: &OpenApi) -> String {
    let mut by_tag: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, item) in &doc.paths.paths {
        let ops: [(&str, &Option<Operation>); 5] = [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            let tag = op
                .tags
                .as_ref()
                .and_then(|t| t.first().cloned())
                .unwrap_or_default();
            let lock = if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                " <span class=\"lock\">bearer</span>"
            } else {
                ""
            };
            by_tag.entry(tag).or_default().push(format!(
                "<tr><td class=\"m\">{method}</td><td><code>{}</code></td><td>{}{lock}</td></tr>",
                escape(path),
                escape(op.summary.as_deref().unwrap_or("")),
            ));
        }
    }
    let mut body = String::new();
    for (tag, rows) in by_tag {
        body.push_str(&format!(
            "<h2>{}</h2>\n<table>\n{}\n</table>\n",
            escape(&tag),
            rows.join("\n")
        ));
    }
    TEMPLATE
        .replace("QUARRY_VERSION", &escape(&doc.info.version))
        .replace("QUARRY_OPERATIONS", &body)
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "pages",
    summary = "This OpenAPI document",
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
pub(super) async fn spec(Extension(pages): Extension<Arc<Pages>>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], pages.json.clone())
}

#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs",
    tag = "pages",
    summary = "The operations of this document, as a page",
    responses((status = 200, description = "the page (no script)", content_type = "text/html", body = String)),
)]
pub(super) async fn page(Extension(pages): Extension<Arc<Pages>>) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
            (HeaderName::from_static("content-security-policy"), CSP),
            (HeaderName::from_static("referrer-policy"), "no-referrer"),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            (HeaderName::from_static("x-frame-options"), "DENY"),
        ],
        pages.html.clone(),
    )
}

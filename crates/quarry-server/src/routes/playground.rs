//! `GET /`: the search playground, one page compiled into the binary (`playground/index.html`:
//! HTML, CSS and script inline, nothing fetched from elsewhere). It calls the same `/v1` routes
//! as any client, with the token typed into it; the page itself needs none, as it holds no data.
//! The headers keep it self-contained: a Content-Security-Policy that allows this origin only
//! (no CDN, no third-party script can load, the token cannot leave), no referrer, no sniffing,
//! no framing.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName};
use axum::response::IntoResponse;

const PAGE: &str = include_str!("../playground/index.html");

/// What the page may load and call: itself, inline, its own origin; blobs for the report it opens.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'none'";

#[utoipa::path(
    get,
    path = "/",
    operation_id = "playground",
    tag = "pages",
    summary = "The search playground",
    responses((status = 200, description = "the page (HTML, CSS and script inline)", content_type = "text/html", body = String)),
)]
pub(super) async fn page() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
            (HeaderName::from_static("content-security-policy"), CSP),
            (HeaderName::from_static("referrer-policy"), "no-referrer"),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            (HeaderName::from_static("x-frame-options"), "DENY"),
        ],
        PAGE,
    )
}

//! Authentication and access control over a real socket: every `/v1` route refuses a caller
//! without a valid token (401) or without the role (403); a document a caller may not read is
//! missing for it everywhere (fetch, list, counts, query results, delete, replace); HS256 and RS256
//! JWTs; the bind policy and the CLI's `--token`.

use crate::http::TestServer;
use crate::{path_str, quarry, spawn_serve, tmp, write_tree};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use quarry_core::{DefaultAcl, Principal, Role};
use quarry_index::EngineOptions;
use quarry_server::ServerOptions;
use quarry_server::auth::{ApiKey, Auth, JwtOptions};
use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::PathBuf;

const ADMIN_KEY: &str = "qk-admin-0123456789";
const WRITER_KEY: &str = "qk-writer-0123456789";
const READER_KEY: &str = "qk-reader-0123456789";
const HS256_SECRET: &[u8] = b"test-secret-of-at-least-32-bytes!!";

/// The RS256 key pair under tests/fixtures/auth is a test key, generated with openssl for these
/// tests only and public on purpose.
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn hs256(claims: Value) -> String {
    hs256_with(claims, HS256_SECRET)
}

fn hs256_with(claims: Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn rs256(claims: Value) -> String {
    let pem = std::fs::read(fixture("rs256-test-private.pem")).unwrap();
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

/// A server with three API keys (admin; writer and reader in group `eng`), HS256 and RS256 JWTs,
/// and the secure default ACL (documents without an ACL: admins only).
fn auth_server() -> TestServer {
    let keys = vec![
        ApiKey::from_key(ADMIN_KEY, Principal::new("root", vec![], Role::Admin)),
        ApiKey::from_key(
            WRITER_KEY,
            Principal::new("wanda", vec!["eng".into()], Role::Writer),
        ),
        ApiKey::from_key(
            READER_KEY,
            Principal::new("erin", vec!["eng".into()], Role::Reader),
        ),
    ];
    let jwt = JwtOptions {
        hs256_secret: Some(HS256_SECRET.to_vec()),
        rs256_public_key_pem: Some(std::fs::read(fixture("rs256-test-public.pem")).unwrap()),
        issuer: None,
        audience: None,
        leeway_secs: 0,
        ..JwtOptions::default()
    };
    TestServer::start_with(
        ServerOptions {
            auth: Auth::new(keys, Some(jwt)).unwrap(),
            ..ServerOptions::default()
        },
        EngineOptions {
            default_acl: DefaultAcl::admin_only(),
            ..EngineOptions::default()
        },
    )
}

struct Answer {
    status: u16,
    body: Value,
    www_authenticate: Option<String>,
    /// The `Connection` header: `close` on a refusal, whose body the server never reads.
    connection: Option<String>,
}

fn call(s: &TestServer, method: &Method, path: &str, token: Option<&str>, body: &Value) -> Answer {
    let mut req = Client::new().request(method.clone(), format!("{}{path}", s.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if !body.is_null() {
        req = req.json(body);
    }
    let r = req.send().unwrap();
    let www_authenticate = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let connection = r
        .headers()
        .get("connection")
        .map(|v| v.to_str().unwrap().to_owned());
    Answer {
        status: r.status().as_u16(),
        www_authenticate,
        connection,
        body: r.json().unwrap_or(Value::Null),
    }
}

fn get(s: &TestServer, path: &str, token: &str) -> (u16, Value) {
    let a = call(s, &Method::GET, path, Some(token), &Value::Null);
    (a.status, a.body)
}

fn post(s: &TestServer, path: &str, token: &str, body: Value) -> (u16, Value) {
    let a = call(s, &Method::POST, path, Some(token), &body);
    (a.status, a.body)
}

fn upsert(s: &TestServer, docs: Value) {
    let (status, body) = post(
        s,
        "/v1/collections/default/documents",
        ADMIN_KEY,
        json!({ "documents": docs }),
    );
    assert_eq!(status, 200, "{body}");
}

fn ids(list: &Value, key: &str, field: &str) -> Vec<String> {
    let mut out: Vec<String> = list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[field].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every route under /v1 with every kind of caller: the table is the contract (docs/access-control.md,
/// "Authentication and access control").
#[test]
fn every_v1_route_needs_a_valid_token_and_the_role() {
    let s = auth_server();
    upsert(
        &s,
        json!([{"id": "pub.md", "text": "public words", "acl": ["public"]}]),
    );
    let exp = now() + 300;

    // (method, path, body, least role, status when allowed)
    let routes: Vec<(Method, &str, Value, Role, u16)> = vec![
        (
            Method::GET,
            "/v1/collections",
            Value::Null,
            Role::Reader,
            200,
        ),
        (
            Method::GET,
            "/v1/collections/default",
            Value::Null,
            Role::Reader,
            200,
        ),
        (
            Method::POST,
            "/v1/collections/default/query",
            json!({"query": "words", "mode": "bm25"}),
            Role::Reader,
            200,
        ),
        (
            Method::POST,
            "/v1/collections/default/query/batch",
            json!({"queries": [{"query": "words", "mode": "bm25"}]}),
            Role::Reader,
            200,
        ),
        (
            Method::GET,
            "/v1/collections/default/documents",
            Value::Null,
            Role::Reader,
            200,
        ),
        (
            Method::GET,
            "/v1/collections/default/documents/pub.md",
            Value::Null,
            Role::Reader,
            200,
        ),
        // This server has no embedder: an allowed caller gets 503 embedding_unavailable.
        (
            Method::POST,
            "/v1/embeddings",
            json!({"input": "x", "model": "m"}),
            Role::Reader,
            503,
        ),
        // ... and an empty model list
        (Method::GET, "/v1/models", Value::Null, Role::Reader, 200),
        (Method::GET, "/v1/models/m", Value::Null, Role::Reader, 404),
        (
            Method::POST,
            "/v1/collections/default/documents",
            json!({"documents": [{"id": "w.md", "text": "written", "acl": ["group:eng"]}]}),
            Role::Writer,
            200,
        ),
        (
            Method::GET,
            "/v1/collections/default/versions",
            Value::Null,
            Role::Admin,
            200,
        ),
        (
            Method::PUT,
            "/v1/collections/default/golden/smoke",
            json!({"queries": [{"query": "public words", "relevant": {"pub.md": 1}}]}),
            Role::Admin,
            200,
        ),
        (
            Method::GET,
            "/v1/collections/default/golden",
            Value::Null,
            Role::Admin,
            200,
        ),
        (
            Method::POST,
            "/v1/collections/default/eval",
            json!({"golden": "smoke", "modes": ["bm25"]}),
            Role::Admin,
            200,
        ),
        (
            Method::GET,
            "/v1/collections/default/eval/runs",
            Value::Null,
            Role::Admin,
            200,
        ),
        (
            Method::DELETE,
            "/v1/collections/default/golden/smoke",
            Value::Null,
            Role::Admin,
            200,
        ),
        (
            Method::DELETE,
            "/v1/collections/default/documents/victim.md",
            Value::Null,
            Role::Writer,
            200,
        ),
        (
            Method::DELETE,
            "/v1/collections/default/documents/victim.md?forget=true",
            Value::Null,
            Role::Admin,
            200,
        ),
        // `default` exists with these (the default) settings: unchanged
        (
            Method::PUT,
            "/v1/collections/default",
            json!({}),
            Role::Admin,
            200,
        ),
        (
            Method::DELETE,
            "/v1/collections/doomed",
            Value::Null,
            Role::Admin,
            200,
        ),
        // An admin passes the role check and gets the invalid name refused: nothing is written.
        (
            Method::POST,
            "/v1/snapshots",
            json!({"name": "not/a/name"}),
            Role::Admin,
            400,
        ),
    ];

    let expired = hs256(json!({"sub": "root", "role": "admin", "exp": now() - 120}));
    let wrong_secret = hs256_with(
        json!({"sub": "root", "role": "admin", "exp": exp}),
        b"another-secret-of-at-least-32-bytes",
    );
    let good_rs = rs256(json!({"sub": "root", "role": "admin", "exp": exp}));
    // Change one character in the middle of the signature.
    let (head, sig) = good_rs.rsplit_once('.').unwrap();
    let mut sig: Vec<char> = sig.chars().collect();
    let mid = sig.len() / 2;
    sig[mid] = if sig[mid] == 'A' { 'B' } else { 'A' };
    let tampered_rs = format!("{head}.{}", sig.into_iter().collect::<String>());
    let unauthenticated: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("unknown API key", Some("qk-unknown".into())),
        ("expired JWT", Some(expired)),
        ("HS256 JWT with the wrong secret", Some(wrong_secret)),
        ("RS256 JWT with a wrong signature", Some(tampered_rs)),
        (
            "JWT without sub",
            Some(hs256(json!({"role": "admin", "exp": exp}))),
        ),
    ];
    let reader_jwt = hs256(json!({"sub": "erin", "groups": ["eng"], "exp": exp}));
    let writer_jwt =
        rs256(json!({"sub": "wanda", "groups": ["eng"], "role": "writer", "exp": exp}));
    let admin_jwt = hs256(json!({"sub": "root", "role": "admin", "exp": exp}));
    let callers: Vec<(&str, String, Role)> = vec![
        ("reader API key", READER_KEY.into(), Role::Reader),
        ("reader HS256 JWT", reader_jwt, Role::Reader),
        ("writer API key", WRITER_KEY.into(), Role::Writer),
        ("writer RS256 JWT", writer_jwt, Role::Writer),
        ("admin API key", ADMIN_KEY.into(), Role::Admin),
        ("admin HS256 JWT", admin_jwt, Role::Admin),
        ("admin RS256 JWT", good_rs.clone(), Role::Admin),
    ];

    for (method, path, body, least, allowed) in &routes {
        for (who, token) in &unauthenticated {
            let a = call(&s, method, path, token.as_deref(), body);
            assert_eq!(a.status, 401, "{who}: {method} {path}: {}", a.body);
            assert_eq!(
                a.body["error"]["code"], "unauthorized",
                "{who}: {method} {path}"
            );
            assert!(
                a.www_authenticate
                    .as_deref()
                    .is_some_and(|h| h.starts_with("Bearer")),
                "{who}: {method} {path}: WWW-Authenticate {:?}",
                a.www_authenticate
            );
            assert_eq!(
                a.connection.as_deref(),
                Some("close"),
                "{who}: {method} {path}"
            );
        }
        let a = call(&s, method, path, None, body);
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Bearer"),
            "the 401 says how to authenticate: {}",
            a.body
        );
        for (who, token, role) in &callers {
            if *method == Method::DELETE && path.contains("/golden/") {
                let a = call(
                    &s,
                    &Method::PUT,
                    path,
                    Some(ADMIN_KEY),
                    &json!({"queries": [{"query": "public words", "relevant": {"pub.md": 1}}]}),
                );
                assert_eq!(a.status, 200, "{}", a.body);
            } else if *method == Method::DELETE && *path == "/v1/collections/doomed" {
                let a = call(&s, &Method::PUT, path, Some(ADMIN_KEY), &json!({}));
                assert!(matches!(a.status, 200 | 201), "{}", a.body);
            } else if *method == Method::DELETE {
                upsert(
                    &s,
                    json!([{"id": "victim.md", "text": "doomed", "acl": ["group:eng"]}]),
                );
            }
            let a = call(&s, method, path, Some(token), body);
            if role >= least {
                assert_eq!(a.status, *allowed, "{who}: {method} {path}: {}", a.body);
                assert_ne!(
                    a.connection.as_deref(),
                    Some("close"),
                    "{who}: {method} {path}"
                );
            } else {
                assert_eq!(a.status, 403, "{who}: {method} {path}: {}", a.body);
                assert_eq!(a.body["error"]["code"], "forbidden");
                assert!(a.www_authenticate.is_none());
                assert_eq!(
                    a.connection.as_deref(),
                    Some("close"),
                    "{who}: {method} {path}"
                );
            }
        }
    }

    // Malformed Authorization headers, and health checks that stay open.
    for header in ["Basic cm9vdDpyb290", "Bearer", ADMIN_KEY] {
        let r = Client::new()
            .get(format!("{}/v1/collections", s.url))
            .header("authorization", header)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{header:?}");
    }
    for open in ["/healthz", "/readyz"] {
        let a = call(&s, &Method::GET, open, None, &Value::Null);
        assert_eq!(a.status, 200, "{open}");
    }
}

/// A document a caller may not read does not exist for it: fetched by id, listed, counted,
/// queried, deleted or replaced.
#[test]
fn hidden_documents_are_missing_everywhere() {
    let s = auth_server();
    upsert(
        &s,
        json!([
            {"id": "pub.md", "text": "alpha shared notes", "acl": ["public"]},
            {"id": "eng/design.md", "text": "alpha engineering design", "acl": ["group:eng"]},
            {"id": "ops.md", "text": "alpha operations secret", "acl": ["group:ops"]},
            {"id": "alice.md", "text": "alpha private diary", "acl": ["user:alice"]},
            {"id": "noacl.md", "text": "alpha without an acl"},
        ]),
    );
    let exp = now() + 300;
    let ops = rs256(json!({"sub": "olga", "groups": ["ops"], "exp": exp}));
    let alice = hs256(json!({"sub": "alice", "exp": exp}));

    // Fetch by id: the hidden document answers exactly like a missing one.
    let (status, doc) = get(
        &s,
        "/v1/collections/default/documents/eng/design.md",
        READER_KEY,
    );
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["text"], "alpha engineering design");
    assert!(
        doc.get("acl").is_none(),
        "readers are not shown ACLs: {doc}"
    );
    let (_, doc) = get(
        &s,
        "/v1/collections/default/documents/eng/design.md",
        WRITER_KEY,
    );
    assert_eq!(doc["acl"], json!(["group:eng"]));
    let (hidden_status, hidden) = get(&s, "/v1/collections/default/documents/ops.md", READER_KEY);
    let (missing_status, missing) =
        get(&s, "/v1/collections/default/documents/nope.md", READER_KEY);
    assert_eq!((hidden_status, missing_status), (404, 404));
    assert_eq!(hidden["error"]["code"], "document_not_found");
    assert_eq!(
        hidden["error"]["message"]
            .as_str()
            .unwrap()
            .replace("ops.md", "X"),
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .replace("nope.md", "X"),
    );
    for (id, token) in [
        ("noacl.md", READER_KEY),
        ("alice.md", ops.as_str()),
        ("eng/design.md", ops.as_str()),
    ] {
        let (status, _) = get(
            &s,
            &format!("/v1/collections/default/documents/{id}"),
            token,
        );
        assert_eq!(status, 404, "{id}");
    }
    let (status, _) = get(&s, "/v1/collections/default/documents/ops.md", &ops);
    assert_eq!(status, 200);
    let (status, _) = get(&s, "/v1/collections/default/documents/noacl.md", ADMIN_KEY);
    assert_eq!(status, 200, "admins read documents without an ACL");

    // Listing, counts and query results, per caller.
    let visible = [
        (READER_KEY, vec!["eng/design.md", "pub.md"]),
        (ops.as_str(), vec!["ops.md", "pub.md"]),
        (alice.as_str(), vec!["alice.md", "pub.md"]),
        (
            ADMIN_KEY,
            vec!["alice.md", "eng/design.md", "noacl.md", "ops.md", "pub.md"],
        ),
    ];
    for (token, want) in &visible {
        let (status, list) = get(&s, "/v1/collections/default/documents", token);
        assert_eq!(status, 200, "{list}");
        assert_eq!(ids(&list, "documents", "id"), *want);
        assert!(
            list["documents"][0].get("text").is_none(),
            "a list has no texts"
        );
        assert_eq!(list["next_after"], Value::Null);
        let (_, stats) = get(&s, "/v1/collections/default", token);
        assert_eq!(stats["documents"], want.len(), "{stats}");
        let (_, all) = get(&s, "/v1/collections", token);
        assert_eq!(all["collections"][0]["documents"], want.len());
        let (status, hits) = post(
            &s,
            "/v1/collections/default/query",
            token,
            json!({"query": "alpha", "mode": "bm25", "top_k": 100}),
        );
        assert_eq!(status, 200, "{hits}");
        assert_eq!(ids(&hits, "results", "doc_id"), *want);
        let (status, batch) = post(
            &s,
            "/v1/collections/default/query/batch",
            token,
            json!({"queries": [{"query": "alpha", "mode": "bm25", "top_k": 100}]}),
        );
        assert_eq!(status, 200, "{batch}");
        assert_eq!(ids(&batch["answers"][0], "results", "doc_id"), *want);
    }

    // Pages follow `next_after`, in doc id order.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/collections/default/documents?limit=2&after={a}"),
            None => "/v1/collections/default/documents?limit=2".to_owned(),
        };
        let (status, page) = get(&s, &path, ADMIN_KEY);
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["documents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_owned()),
        );
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["alice.md", "eng/design.md", "noacl.md", "ops.md", "pub.md"]
    );
    for bad in ["limit=0", "limit=1001", "limit=x", "offset=3"] {
        let (status, body) = get(
            &s,
            &format!("/v1/collections/default/documents?{bad}"),
            ADMIN_KEY,
        );
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
    }
    let (status, body) = get(&s, "/v1/collections/nope/documents", ADMIN_KEY);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("collection_not_found"))
    );

    // A writer can neither delete nor replace a document it may not read.
    let del = call(
        &s,
        &Method::DELETE,
        "/v1/collections/default/documents/ops.md",
        Some(WRITER_KEY),
        &Value::Null,
    );
    assert_eq!(del.status, 404, "{}", del.body);
    assert_eq!(del.body["error"]["code"], "document_not_found");
    let (status, body) = post(
        &s,
        "/v1/collections/default/documents",
        WRITER_KEY,
        json!({"documents": [{"id": "mine.md", "text": "fine", "acl": ["group:eng"]}, {"id": "ops.md", "text": "overwritten", "acl": ["group:eng"]}]}),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ops.md")
    );
    let (_, doc) = get(&s, "/v1/collections/default/documents/ops.md", ADMIN_KEY);
    assert_eq!(doc["text"], "alpha operations secret", "not replaced");
    let (status, _) = get(&s, "/v1/collections/default/documents/mine.md", ADMIN_KEY);
    assert_eq!(status, 404, "nothing of the refused batch was written");
    // ...but replaces what it reads, and deletes it.
    let (status, body) = post(
        &s,
        "/v1/collections/default/documents",
        WRITER_KEY,
        json!({"documents": [{"id": "eng/design.md", "text": "alpha design v2", "acl": ["group:eng"]}]}),
    );
    assert_eq!((status, body["updated"].as_u64()), (200, Some(1)), "{body}");
    let del = call(
        &s,
        &Method::DELETE,
        "/v1/collections/default/documents/eng/design.md",
        Some(WRITER_KEY),
        &Value::Null,
    );
    assert_eq!(del.status, 200, "{}", del.body);
    let (status, _) = get(
        &s,
        "/v1/collections/default/documents/eng/design.md",
        ADMIN_KEY,
    );
    assert_eq!(status, 404);
}

/// A JWT must name the configured issuer and audience when they are set.
#[test]
fn jwt_issuer_and_audience_are_checked_when_configured() {
    let jwt = JwtOptions {
        hs256_secret: Some(HS256_SECRET.to_vec()),
        rs256_public_key_pem: None,
        issuer: Some("https://idp.example".into()),
        audience: Some("quarry".into()),
        leeway_secs: 30,
        ..JwtOptions::default()
    };
    let s = TestServer::start_with(
        ServerOptions {
            auth: Auth::new(vec![], Some(jwt)).unwrap(),
            ..ServerOptions::default()
        },
        EngineOptions::default(),
    );
    let exp = now() + 300;
    for (claims, want) in [
        (
            json!({"sub": "a", "exp": exp, "iss": "https://idp.example", "aud": "quarry"}),
            200,
        ),
        (
            json!({"sub": "a", "exp": exp, "iss": "https://other.example", "aud": "quarry"}),
            401,
        ),
        (
            json!({"sub": "a", "exp": exp, "iss": "https://idp.example", "aud": "other"}),
            401,
        ),
        (json!({"sub": "a", "exp": exp, "aud": "quarry"}), 401),
        (
            json!({"sub": "a", "exp": exp, "iss": "https://idp.example"}),
            401,
        ),
        // Expired 10 s ago: within the 30 s leeway.
        (
            json!({"sub": "a", "exp": now() - 10, "iss": "https://idp.example", "aud": "quarry"}),
            200,
        ),
    ] {
        let (status, body) = get(&s, "/v1/collections", &hs256(claims.clone()));
        assert_eq!(status, want, "{claims}: {body}");
    }
    // RS256 is not configured on this server; API keys neither.
    let rs = rs256(json!({"sub": "a", "exp": exp, "iss": "https://idp.example", "aud": "quarry"}));
    let (status, body) = get(&s, "/v1/collections", &rs);
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("HS256"),
        "{body}"
    );
    let (status, _) = get(&s, "/v1/collections", "qk-any");
    assert_eq!(status, 401);
}

#[test]
fn serve_without_auth_stays_on_loopback_unless_told_otherwise() {
    let data = tmp();
    let out = quarry()
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--addr", "0.0.0.0:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for hint in ["[[auth.api_keys]]", "[auth.jwt]", "--insecure-no-auth"] {
        assert!(stderr.contains(hint), "{hint}: {stderr}");
    }

    let served = spawn_serve(
        data.path(),
        &["--addr", "0.0.0.0:0", "--insecure-no-auth"],
        &[],
    );
    let port = served.url.rsplit(':').next().unwrap().to_owned();
    let r = Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/collections"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "no token needed without auth");
    let log = served.stop();
    assert!(
        log.contains("authentication: off (--insecure-no-auth"),
        "{log}"
    );

    let served = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let log = served.stop();
    assert!(log.contains("authentication: off (loopback only)"), "{log}");
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn cli_sends_the_token_and_explains_refusals() {
    let data = tmp();
    let docs = tmp();
    write_tree(
        docs.path(),
        &[
            ("eng/.quarry-acl.toml", b"allow = [\"group:eng\"]\n"),
            ("eng/a.md", b"# Alpha\nthe quick brown fox"),
            ("ops/.quarry-acl.toml", b"allow = [\"group:ops\"]\n"),
            ("ops/b.md", b"# Beta\nthe quick red fox"),
        ],
    );
    assert!(
        crate::run(data.path(), &["ingest", &path_str(docs.path())])
            .status
            .success()
    );
    let config = format!(
        "[[auth.api_keys]]\nkey_sha256 = \"{}\"\nuser = \"erin\"\ngroups = [\"eng\"]\nrole = \"reader\"\n\
         [[auth.api_keys]]\nkey_sha256 = \"{}\"\nuser = \"root\"\nrole = \"admin\"\n\
         [auth.jwt]\nhs256_secret_env = \"QUARRY_IT_JWT_SECRET\"\n",
        sha256_hex(READER_KEY),
        sha256_hex(ADMIN_KEY)
    );
    write_tree(data.path(), &[("quarry.toml", config.as_bytes())]);
    let secret = std::str::from_utf8(HS256_SECRET).unwrap();
    let jwt = hs256(json!({"sub": "olga", "groups": ["ops"], "exp": now() + 300}));
    let served = spawn_serve(
        data.path(),
        &["--addr", "127.0.0.1:0"],
        &[("QUARRY_IT_JWT_SECRET", secret), ("QUARRY_LOG", "trace")],
    );
    assert!(
        served.early.iter().any(|l| l.contains(
            "authentication: 2 API keys, JWT (HS256); documents without an ACL: admins only"
        )),
        "{:?}",
        served.early
    );
    let url = served.url.clone();
    let query = |extra: &[&str]| {
        quarry()
            .args(["query", "fox", "--mode", "bm25", "--json", "--server", &url])
            .args(extra)
            .output()
            .unwrap()
    };

    let out = query(&["--token", READER_KEY]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        crate::doc_ids(&v),
        ["eng/a.md"],
        "the reader sees its group's document only"
    );
    let out = quarry()
        .env("QUARRY_TOKEN", &jwt)
        .args(["query", "fox", "--mode", "bm25", "--json", "--server", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(crate::doc_ids(&v), ["ops/b.md"], "a JWT from QUARRY_TOKEN");

    let out = query(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("--token"), "{stderr}");
    let out = query(&["--token", "qk-wrong"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("refused the token"), "{stderr}");

    let status = |extra: &[&str]| {
        quarry()
            .args(["status", "--json", "--server", &url])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = status(&["--token", READER_KEY]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["server"], url.as_str());
    assert_eq!(
        v["collections"][0]["documents"], 1,
        "counts as the reader sees them"
    );
    let out = status(&["--token", ADMIN_KEY]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["collections"][0]["documents"], 2);
    let out = status(&[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires authentication"));

    let log = served.stop();
    for secret_text in [READER_KEY, ADMIN_KEY, jwt.as_str(), secret] {
        assert!(
            !log.contains(secret_text),
            "the server log holds a secret: {log}"
        );
    }
    assert!(log.contains("authentication failed"), "{log}");

    // Without the secret's variable the server does not start, and says which variable.
    let out = quarry()
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("QUARRY_IT_JWT_SECRET"), "{stderr}");
}

/// An evaluation of a live collection over HTTP runs as the reader it names: the collection's
/// ACLs apply, and both runs are recorded.
#[test]
fn eval_runs_over_http_apply_the_named_readers_acls() {
    let s = auth_server();
    upsert(
        &s,
        json!([
            {"id": "open.md", "text": "solar panels convert light", "acl": ["public"]},
            {"id": "board.md", "text": "solar roadmap for the board", "acl": ["group:board"]}
        ]),
    );
    let (status, body) = call_json(
        &s,
        &Method::PUT,
        "/v1/collections/default/golden/roadmap",
        json!({"queries": [{"id": "r", "query": "solar roadmap", "relevant": {"board.md": 2, "open.md": 1}}]}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, bad) = call_json(
        &s,
        &Method::PUT,
        "/v1/collections/default/golden/bad",
        json!({"queries": [{"query": " ", "relevant": {}}]}),
    );
    assert_eq!(status, 400, "{bad}");
    let eval = |body: Value| call_json(&s, &Method::POST, "/v1/collections/default/eval", body);
    let (status, admin) = eval(json!({"golden": "roadmap", "modes": ["bm25"]}));
    assert_eq!(status, 200, "{admin}");
    let (status, outsider) =
        eval(json!({"golden": "roadmap", "modes": ["bm25"], "as": {"user": "olaf"}}));
    assert_eq!(status, 200, "{outsider}");
    let (_, member) = eval(
        json!({"golden": "roadmap", "modes": ["bm25"], "as": {"user": "bea", "groups": ["board"]}}),
    );
    let ndcg = |v: &Value| v["modes"]["bm25"]["ndcg@10"].as_f64().unwrap();
    assert!((ndcg(&admin) - 1.0).abs() < 1e-9, "{admin}");
    assert!((ndcg(&member) - 1.0).abs() < 1e-9, "{member}");
    assert!(ndcg(&outsider) < 0.5, "{outsider}");
    let (status, missing) = eval(json!({"golden": "nope"}));
    assert_eq!(status, 404, "{missing}");
    let (_, runs) = call_json(
        &s,
        &Method::GET,
        "/v1/collections/default/eval/runs",
        Value::Null,
    );
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[1]["config"]["principal"]["user"], "olaf");
    assert_eq!(runs[1]["config"]["golden"], "roadmap");

    // The HTML report of those runs, for admins only (the playground links it).
    let report = |token: &str| {
        Client::new()
            .get(format!("{}/v1/collections/default/eval/report", s.url))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    let r = report(ADMIN_KEY);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let html = r.text().unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains(runs[2]["id"].as_str().unwrap()));
    assert_eq!(report(READER_KEY).status(), 403);
}

fn call_json(s: &TestServer, method: &Method, path: &str, body: Value) -> (u16, Value) {
    let a = call(s, method, path, Some(ADMIN_KEY), &body);
    (a.status, a.body)
}

/// A JWT whose `nbf` is in the future is refused, HS256 or RS256; one whose `nbf` is past, or
/// within the leeway, is accepted.
#[test]
fn jwt_not_before_in_the_future_is_refused() {
    let s = auth_server();
    let exp = now() + 2 * 365 * 86400;
    let hour = now() + 3600;
    let year = now() + 365 * 86400;
    for (what, token) in [
        (
            "HS256 nbf +1h",
            hs256(json!({"sub": "a", "exp": exp, "nbf": hour})),
        ),
        (
            "HS256 nbf +1y",
            hs256(json!({"sub": "a", "exp": exp, "nbf": year})),
        ),
        (
            "RS256 nbf +1h",
            rs256(json!({"sub": "a", "exp": exp, "nbf": hour})),
        ),
        (
            "RS256 nbf +1y",
            rs256(json!({"sub": "a", "exp": exp, "nbf": year})),
        ),
    ] {
        let (status, body) = get(&s, "/v1/collections", &token);
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not valid yet"),
            "{what}: {body}"
        );
    }
    for token in [
        hs256(json!({"sub": "a", "exp": exp, "nbf": now() - 60})),
        rs256(json!({"sub": "a", "exp": exp, "nbf": now() - 60})),
    ] {
        let (status, body) = get(&s, "/v1/collections", &token);
        assert_eq!(status, 200, "{body}");
    }

    // With 30 s of leeway, nbf 10 s ahead (a clock slightly behind the issuer's) is accepted.
    let jwt = JwtOptions {
        hs256_secret: Some(HS256_SECRET.to_vec()),
        leeway_secs: 30,
        ..JwtOptions::default()
    };
    let s = TestServer::start(ServerOptions {
        auth: Auth::new(vec![], Some(jwt)).unwrap(),
        ..ServerOptions::default()
    });
    let (status, body) = get(
        &s,
        "/v1/collections",
        &hs256(json!({"sub": "a", "exp": exp, "nbf": now() + 10})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(
        &s,
        "/v1/collections",
        &hs256(json!({"sub": "a", "exp": exp, "nbf": now() + 3600})),
    );
    assert_eq!(status, 401);
}

/// An HS256 token signed with the bytes of the server's RSA public key (the classic algorithm
/// confusion) is refused, whether it names the RSA key's `kid`, a JWKS RSA key's, or none.
#[test]
fn an_rsa_public_key_is_never_an_hmac_secret() {
    let public = std::fs::read(fixture("rs256-test-public.pem")).unwrap();
    let public2 = std::fs::read(fixture("rs256-test2-public.pem")).unwrap();
    let jwt = JwtOptions {
        rs256_public_key_pem: Some(public.clone()),
        rs256_kid: Some("rsa-1".into()),
        jwks_json: Some(jwks(&[("rsa-2", "rs256-test2-private.pem")])),
        ..JwtOptions::default()
    };
    let s = TestServer::start(ServerOptions {
        auth: Auth::new(vec![], Some(jwt)).unwrap(),
        ..ServerOptions::default()
    });
    let claims = json!({"sub": "mallory", "role": "admin", "exp": now() + 300});
    for (kid, secret, want) in [
        (Some("rsa-1"), &public, "algorithm does not match the key"),
        (Some("rsa-2"), &public2, "algorithm does not match the key"),
        (None, &public, "HS256 is not accepted"),
    ] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        let forged =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
        let (status, body) = get(&s, "/v1/collections", &forged);
        assert_eq!(status, 401, "{kid:?}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(want),
            "{kid:?}: {body}"
        );
    }
    // The genuine tokens of both keys pass.
    for (kid, key) in [
        ("rsa-1", "rs256-test-private.pem"),
        ("rsa-2", "rs256-test2-private.pem"),
    ] {
        let (status, body) = get(&s, "/v1/collections", &rs256_kid(&claims, kid, key));
        assert_eq!(status, 200, "{kid}: {body}");
    }
}

fn rs256_kid(claims: &Value, kid: &str, private_pem: &str) -> String {
    let pem = std::fs::read(fixture(private_pem)).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

/// A JWKS of the fixture RSA keys: `(kid, private key file)`; the public half of each goes in.
fn jwks(keys: &[(&str, &str)]) -> Vec<u8> {
    let keys: Vec<jsonwebtoken::jwk::Jwk> = keys
        .iter()
        .map(|(kid, file)| {
            let pem = std::fs::read(fixture(file)).unwrap();
            let key = EncodingKey::from_rsa_pem(&pem).unwrap();
            let mut jwk =
                jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
            jwk.common.key_id = Some((*kid).to_owned());
            jwk
        })
        .collect();
    let set = serde_json::to_vec_pretty(&json!({ "keys": keys })).unwrap();
    let text = String::from_utf8(set.clone()).unwrap();
    assert!(
        !text.contains("\"d\""),
        "no private parts in a JWKS: {text}"
    );
    set
}

/// Key rotation with `auth.jwt.jwks_file`: tokens choose their key by `kid`; a key added to the
/// file is used after the next reload, one removed is refused as an unknown key id; a broken file
/// leaves the keys in use.
#[test]
fn jwks_file_rotation_over_serve() {
    let data = tmp();
    let keys_dir = tmp();
    let jwks_path = keys_dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&[("2024-01", "rs256-test-private.pem")])).unwrap();
    let config = format!(
        "[auth.jwt]\njwks_file = \"{}\"\njwks_reload_secs = 1\n",
        path_str(&jwks_path)
    );
    write_tree(data.path(), &[("quarry.toml", config.as_bytes())]);
    let mut served = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    assert!(
        served
            .early
            .iter()
            .any(|l| l.contains("authentication: JWT (RS256; key ids 2024-01)")),
        "{:?}",
        served.early
    );
    let url = served.url.clone();
    let status_of = |token: &str| -> (u16, String) {
        let r = Client::new()
            .get(format!("{url}/v1/collections"))
            .bearer_auth(token)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().unwrap())
    };
    let claims = json!({"sub": "svc", "exp": now() + 300});
    let old = rs256_kid(&claims, "2024-01", "rs256-test-private.pem");
    let new = rs256_kid(&claims, "2024-07", "rs256-test2-private.pem");
    let old_key_new_kid = rs256_kid(&claims, "2024-07", "rs256-test-private.pem");
    assert_eq!(status_of(&old).0, 200);
    let (status, body) = status_of(&new);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unknown key id"), "{body}");
    let (status, body) = status_of(&rs256(claims.clone()));
    assert_eq!(status, 401, "a token without a kid: {body}");
    assert!(body.contains("no key id"), "{body}");

    // 1. Add the new key: both verify.
    std::fs::write(
        &jwks_path,
        jwks(&[
            ("2024-01", "rs256-test-private.pem"),
            ("2024-07", "rs256-test2-private.pem"),
        ]),
    )
    .unwrap();
    let line = served
        .wait_for_line(
            "key ids 2024-01, 2024-07",
            std::time::Duration::from_secs(20),
        )
        .expect("the JWKS is reloaded");
    assert!(line.contains("reloaded: 2 keys"), "{line}");
    assert_eq!(status_of(&old).0, 200);
    assert_eq!(status_of(&new).0, 200);
    let (status, body) = status_of(&old_key_new_kid);
    assert_eq!(status, 401, "the kid's key must sign it: {body}");

    // 2. A broken file: a warning, and the keys in use stay.
    std::fs::write(&jwks_path, b"{\"keys\": [{\"kty\": \"RSA\"}]}").unwrap();
    served
        .wait_for_line("the keys in use stay", std::time::Duration::from_secs(20))
        .expect("a warning about the broken JWKS");
    assert_eq!(status_of(&old).0, 200);

    // 3. Remove the old key: its tokens are refused.
    std::fs::write(&jwks_path, jwks(&[("2024-07", "rs256-test2-private.pem")])).unwrap();
    served
        .wait_for_line("reloaded: 1 keys", std::time::Duration::from_secs(20))
        .expect("the JWKS is reloaded again");
    let (status, body) = status_of(&old);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unknown key id"), "{body}");
    assert_eq!(status_of(&new).0, 200);
    served.stop();

    // A JWKS that cannot be used stops the server at start, naming the file.
    std::fs::write(
        &jwks_path,
        b"{\"keys\": [{\"kty\": \"oct\", \"k\": \"AAAA\"}]}",
    )
    .unwrap();
    let out = quarry()
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("jwks.json") && stderr.contains("no `kid`"),
        "{stderr}"
    );
}

/// `quarry serve` with authentication on says, once, how many documents have no ACL of their
/// own (admins only see them) and how to fix it; not when `auth.default_acl` names readers, nor
/// without authentication.
#[test]
fn serve_warns_when_authentication_hides_documents_without_an_acl() {
    let data = tmp();
    let docs = tmp();
    write_tree(
        docs.path(),
        &[
            ("a.md", b"# A\nno acl here"),
            ("b.md", b"# B\nnone here either"),
            ("eng/.quarry-acl.toml", b"allow = [\"group:eng\"]\n"),
            ("eng/c.md", b"# C\nthis one has an acl"),
        ],
    );
    let out = crate::run(data.path(), &["ingest", &path_str(docs.path())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let served = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let log = served.stop();
    assert!(!log.contains("no ACL of their own"), "auth off: {log}");

    let key = format!(
        "[[auth.api_keys]]\nkey_sha256 = \"{}\"\nuser = \"root\"\nrole = \"admin\"\n",
        sha256_hex(ADMIN_KEY)
    );
    write_tree(data.path(), &[("quarry.toml", key.as_bytes())]);
    let served = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let warnings: Vec<&String> = served
        .early
        .iter()
        .filter(|l| l.contains("no ACL of their own"))
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", served.early);
    let w = warnings[0];
    for want in [
        "WARN",
        "2 documents have no ACL of their own (default: 2)",
        "admins only",
        "auth.default_acl",
        "--acl",
    ] {
        assert!(w.contains(want), "{want}: {w}");
    }
    served.stop();

    let with_default = format!("[auth]\ndefault_acl = [\"group:staff\"]\n{key}");
    write_tree(data.path(), &[("quarry.toml", with_default.as_bytes())]);
    let served = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    assert!(
        served.early.iter().any(|l| l
            .contains("2 documents have no ACL of their own (default: 2); they follow auth.default_acl = [group:staff]")),
        "{:?}",
        served.early
    );
    assert!(
        !served.early.iter().any(|l| l.starts_with("warning:")),
        "{:?}",
        served.early
    );
    served.stop();
}

/// A collection's generation moves with every write, also of documents a reader may not see: it
/// is shown to admins only.
#[test]
fn generation_is_shown_to_admins_only() {
    let s = auth_server();
    upsert(
        &s,
        json!([{"id": "pub.md", "text": "public words", "acl": ["public"]}]),
    );
    let reader_jwt = hs256(json!({"sub": "erin", "groups": ["eng"], "exp": now() + 300}));
    for (who, token) in [
        ("reader key", READER_KEY),
        ("writer key", WRITER_KEY),
        ("reader JWT", reader_jwt.as_str()),
    ] {
        let (status, stats) = get(&s, "/v1/collections/default", token);
        assert_eq!(status, 200, "{who}: {stats}");
        assert!(stats.get("generation").is_none(), "{who}: {stats}");
        assert_eq!(stats["documents"], 1, "{who}: {stats}");
        let (_, list) = get(&s, "/v1/collections", token);
        assert!(
            list["collections"][0].get("generation").is_none(),
            "{who}: {list}"
        );
    }
    let (_, stats) = get(&s, "/v1/collections/default", ADMIN_KEY);
    assert_eq!(stats["generation"], 1, "{stats}");
    upsert(
        &s,
        json!([{"id": "secret.md", "text": "hidden", "acl": ["group:board"]}]),
    );
    let (_, stats) = get(&s, "/v1/collections/default", ADMIN_KEY);
    assert_eq!(stats["generation"], 2, "{stats}");
    let (_, list) = get(&s, "/v1/collections", ADMIN_KEY);
    assert_eq!(list["collections"][0]["generation"], 2, "{list}");
}

/// The embedding cache is shared by every collection and outlives deleted documents, so its
/// counts (`embedded`, `cache_hits`) are shown to admins only; a task is seen by its sender and
/// admins only.
#[test]
fn embedding_counts_and_tasks_are_not_shown_to_others() {
    let s = auth_server();
    let doc = json!({"documents": [{"id": "w.md", "text": "writer words", "acl": ["group:eng"]}]});
    let (status, summary) = post(
        &s,
        "/v1/collections/default/documents",
        WRITER_KEY,
        doc.clone(),
    );
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["added"], 1, "{summary}");
    assert!(summary.get("embedded").is_none(), "{summary}");
    assert!(summary.get("cache_hits").is_none(), "{summary}");
    let (_, summary) = post(
        &s,
        "/v1/collections/default/documents",
        ADMIN_KEY,
        doc.clone(),
    );
    assert_eq!(summary["unchanged"], 1, "{summary}");
    assert!(
        summary["embedded"].is_u64() && summary["cache_hits"].is_u64(),
        "{summary}"
    );
    // a server embeds for several writers at once: no per-request embedding time or tokens
    assert!(
        summary.get("tokens_embedded").is_none() && summary.get("embed_seconds").is_none(),
        "{summary}"
    );

    let (status, task) = post(
        &s,
        "/v1/collections/default/documents?wait=false",
        WRITER_KEY,
        json!({"documents": [{"id": "t.md", "text": "task words", "acl": ["group:eng"]}]}),
    );
    assert_eq!(status, 202, "{task}");
    let path = format!("/v1/tasks/{}", task["task_id"].as_str().unwrap());
    let other_writer = hs256(json!({"sub": "walt", "role": "writer", "exp": now() + 300}));
    let (status, _) = get(&s, &path, &other_writer);
    assert_eq!(status, 404, "another writer's task does not exist for them");
    let (status, _) = get(&s, &path, READER_KEY);
    assert_eq!(status, 403, "tasks need the writer role");
    let (status, seen) = get(&s, &path, ADMIN_KEY);
    assert_eq!(status, 200, "{seen}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let done = loop {
        let (status, t) = get(&s, &path, WRITER_KEY);
        assert_eq!(status, 200, "{t}");
        if t["state"] != "running" {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "{t}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["summary"]["added"], 1, "{done}");
    assert!(done["summary"].get("embedded").is_none(), "{done}");
}

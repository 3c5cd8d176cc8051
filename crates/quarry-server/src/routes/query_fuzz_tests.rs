//! Property-based fuzzing of the query route's request body, the same entry point as the AFL++
//! target `query_json` in `fuzz/`: `POST /v1/collections/c/query` through the whole router on an
//! engine of 20 documents, with bodies made of the request's fields (`query`, `top_k`, `mode`,
//! `group_by`, `fusion`, `filter` (random trees of the filter language too), `explain`, `offset`,
//! `min_score`, `include`, `facets`, `vector`, `embedding_version`) holding values of every JSON type, unknown fields,
//! bodies cut short and arbitrary bytes. Any status but 500 is fine (a panic in the handler's
//! blocking task is a 500), and the answer is JSON. 256 cases in CI;
//! `PROPTEST_CASES=20000 cargo test --release -p quarry-server query_fuzz` for a long run.

use crate::{ServerOptions, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use proptest::prelude::*;
use quarry_index::{Engine, EngineOptions, IngestOptions};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

/// One router over one engine for all cases (the folder lives as long as the test process).
fn app() -> &'static (axum::Router, tokio::runtime::Runtime) {
    static APP: OnceLock<(axum::Router, tokio::runtime::Runtime)> = OnceLock::new();
    APP.get_or_init(|| {
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        let engine = Arc::new(Engine::open(dir.path(), EngineOptions::default()).unwrap());
        let docs = (0..20)
            .map(|i| {
                json!({"id": format!("d{i}"), "title": format!("Doc {i}"),
                "text": format!("w{i}x lantern harbor granite {} river stone", i % 3),
                "metadata": {"kind": if i % 2 == 0 { "a" } else { "b" }, "n": i}})
            })
            .collect();
        let opts = IngestOptions {
            collection: "c".into(),
            ..IngestOptions::default()
        };
        quarry_index::ingest_records(&engine, docs, &opts, "fuzz").unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        (router(engine, ServerOptions::default()), rt)
    })
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just(0.0),
            Just(-1.0),
            Just(1e300),
            Just(0.5),
            Just(1.0000001)
        ]
        .prop_map(Value::from),
        "[a-z]{0,8}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{0,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Filters of the language's shape, over fields that exist (`kind`, `n`, the built-ins) and
/// not, with values of every JSON type.
fn filter() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(vec!["kind", "n", "doc_id", "updated_at", "nope", ""]);
    let op = prop::sample::select(vec!["eq", "in", "gt", "gte", "lt", "lte", "exists", "ne"]);
    let leaf = (field, op, any_json()).prop_map(|(f, o, v)| json!({"field": f, o: v}));
    leaf.prop_recursive(3, 10, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|fs| json!({"and": fs})),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|fs| json!({"or": fs})),
            inner.prop_map(|f| json!({"not": f})),
        ]
    })
}

fn field() -> impl Strategy<Value = (String, Value)> {
    let word = |w: &'static [&'static str]| prop::sample::select(w).prop_map(Value::from);
    let fusion = prop_oneof![
        (word(&["rrf", "weighted", "RRF", ""]), any_json())
            .prop_map(|(m, k)| json!({"method": m, "k": k})),
        (word(&["rrf", "weighted"]), any_json())
            .prop_map(|(m, a)| json!({"method": m, "alpha": a})),
        any_json(),
    ];
    prop_oneof![
        (
            Just("query"),
            prop_oneof![
                Just(Value::from("")),
                "[a-z ]{0,20}".prop_map(Value::from),
                any_json()
            ]
        ),
        (
            Just("top_k"),
            prop_oneof![(0u64..1200).prop_map(Value::from), any_json()]
        ),
        (
            Just("mode"),
            prop_oneof![word(&["hybrid", "bm25", "vector", "Hybrid"]), any_json()]
        ),
        (
            Just("group_by"),
            prop_oneof![word(&["chunk", "document", "doc"]), any_json()]
        ),
        (Just("fusion"), fusion),
        (
            Just("filter"),
            prop_oneof![Just(json!({})), filter(), any_json()]
        ),
        (Just("explain"), any_json()),
        (
            Just("offset"),
            prop_oneof![(0u64..20_000).prop_map(Value::from), any_json()]
        ),
        (Just("min_score"), any_json()),
        (Just("include"), any_json()),
        (
            Just("facets"),
            prop_oneof![
                Just(json!(["kind"])),
                Just(json!(["doc_id", "nope"])),
                any_json()
            ]
        ),
        (
            Just("vector"),
            prop_oneof![
                prop::collection::vec(-2.0f32..2.0, 0..4).prop_map(|v| json!(v)),
                any_json()
            ]
        ),
        (Just("embedding_version"), any_json()),
        (Just("extra"), any_json()),
    ]
    .prop_map(|(k, v)| (k.to_owned(), v))
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let object = prop::collection::vec(field(), 0..6)
        .prop_map(|f| {
            Value::Object(f.into_iter().collect())
                .to_string()
                .into_bytes()
        })
        .boxed();
    prop_oneof![
        6 => object.clone(),
        1 => (object, any::<prop::sample::Index>()).prop_map(|(mut b, at)| {
            b.truncate(at.index(b.len() + 1));
            b
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

proptest! {
    #[test]
    fn query_fuzz_any_body_is_answered_without_a_500(body in body()) {
        let (router, rt) = app();
        let req = Request::post("/v1/collections/c/query")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = rt.block_on(router.clone().oneshot(req)).unwrap();
        let status = resp.status();
        let bytes = rt.block_on(axum::body::to_bytes(resp.into_body(), usize::MAX)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        prop_assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{}", text);
        let answer: Value = serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        if status.is_success() {
            prop_assert!(answer["results"].is_array(), "{}", answer);
        } else {
            prop_assert!(answer["error"]["code"].is_string(), "{}", answer);
        }
    }
}

//! Batches of queries over HTTP (`POST /v1/collections/{c}/query/batch`): the same answers as the
//! single queries, one embedding call, the limit and bad elements as 400s naming them; and the
//! query-embedding cache as `/metrics` counts it.

use crate::http::TestServer;
use quarry_core::Embedder;
use quarry_embed::HashEmbedder;
use quarry_index::{EmbedderSource, EngineOptions};
use quarry_server::ServerOptions;
use serde_json::{Value, json};
use std::sync::Arc;

struct Fixed(Arc<dyn Embedder>);
impl EmbedderSource for Fixed {
    fn get(&self, name: &str) -> quarry_index::Result<Option<Arc<dyn Embedder>>> {
        Ok((name == "e").then(|| self.0.clone()))
    }
}

/// A server with the hashing embedder (32 dimensions), batches of at most 4, over 12 documents.
fn server(cache_entries: usize) -> TestServer {
    let s = TestServer::start_with(
        ServerOptions {
            max_batch_queries: 4,
            ..ServerOptions::default()
        },
        EngineOptions {
            embedder: "e".into(),
            embedders: Some(Arc::new(Fixed(Arc::new(HashEmbedder::new(32).unwrap())))),
            query_embed_cache_entries: cache_entries,
            ..EngineOptions::default()
        },
    );
    let topics = [
        "rust ownership",
        "sourdough bread",
        "espresso coffee",
        "tidal energy",
    ];
    let docs: Vec<Value> = (0..12)
        .map(|i| {
            json!({"id": format!("d{i}"), "title": format!("Note {i}"),
                   "text": format!("{} notes, part {i}: {}", topics[i % 4], topics[(i + 1) % 4]),
                   "metadata": {"part": i}})
        })
        .collect();
    let (status, body) = s.post(
        "/v1/collections/default/documents",
        &json!({ "documents": docs }),
    );
    assert_eq!(status, 200, "{body}");
    s
}

/// The value of the `/metrics` series `name{labels}` (0 when absent).
fn metric(s: &TestServer, series: &str) -> f64 {
    let text = reqwest::blocking::get(format!("{}/metrics", s.url))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

const CALLS: &str = r#"quarry_embedding_calls_total{embedder="e",kind="query"}"#;
const TEXTS: &str = r#"quarry_embedding_texts_total{embedder="e",kind="query"}"#;

#[test]
fn a_batch_answers_as_the_single_queries_with_one_embedding_call() {
    let s = server(0);
    let queries = vec![
        json!({"query": "rust ownership"}),
        json!({"query": "bread", "mode": "bm25", "top_k": 3}),
        json!({"query": "coffee", "mode": "vector", "group_by": "document",
               "filter": {"field": "part", "gte": 2}, "facets": ["part"]}),
        json!({"query": "tidal energy", "fusion": {"method": "rrf", "k": 10}, "offset": 1}),
    ];
    let (calls, texts) = (metric(&s, CALLS), metric(&s, TEXTS));
    let (status, batch) = s.post(
        "/v1/collections/default/query/batch",
        &json!({ "queries": queries }),
    );
    assert_eq!(status, 200, "{batch}");
    assert_eq!(metric(&s, CALLS), calls + 1.0, "one call to the model");
    assert_eq!(
        metric(&s, TEXTS),
        texts + 3.0,
        "the three texts that need a vector"
    );
    let answers = batch["answers"].as_array().unwrap();
    assert_eq!(answers.len(), queries.len());
    for (q, answer) in queries.iter().zip(answers) {
        let (status, alone) = s.post("/v1/collections/default/query", q);
        assert_eq!(status, 200, "{alone}");
        assert!(!alone["results"].as_array().unwrap().is_empty(), "{q}");
        for key in [
            "results",
            "facets",
            "degraded",
            "warnings",
            "embedding_version",
        ] {
            assert_eq!(answer[key], alone[key], "{key} of {q}");
        }
    }
    assert_eq!(answers[0]["degraded"], false);
    assert!(answers[0]["results"][0]["scores"]["vector"].is_number());
    // every query of the batch is counted as a served query
    let ok = r#"quarry_queries_total{collection="default",mode="hybrid",outcome="ok"}"#;
    assert_eq!(metric(&s, ok), 4.0, "two in the batch, two alone");
}

#[test]
fn the_limit_and_bad_elements_are_400s_that_name_them() {
    let s = server(100);
    let path = "/v1/collections/default/query/batch";
    let q = json!({"query": "bread"});
    let refused = |body: Value, code: &str, words: &[&str]| {
        let (status, e) = s.post(path, &body);
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (400, Some(code)),
            "{e}"
        );
        let message = e["error"]["message"].as_str().unwrap();
        for w in words {
            assert!(message.contains(w), "`{w}` not in: {message}");
        }
    };
    refused(
        json!({"queries": vec![q.clone(); 5]}),
        "invalid_request",
        &["5 queries", "send 1 to 4", "server.max_batch_queries"],
    );
    refused(json!({"queries": []}), "invalid_request", &["0 queries"]);
    refused(json!({"query": "bread"}), "invalid_json", &["query"]);
    refused(
        json!({"queries": [q, q, {"query": "x", "top_k": 0}]}),
        "invalid_request",
        &["queries[2]: ", "top_k"],
    );
    refused(
        json!({"queries": [q, {"query": "x", "topk": 3}]}),
        "invalid_json",
        &["queries[1]: ", "topk"],
    );
    refused(
        json!({"queries": [q, q, q, {"query": "x", "vector": [1.0, 2.0, 3.0]}]}),
        "invalid_request",
        &["queries[3]: ", "`vector` has 3 values", "32 dimensions"],
    );
    refused(
        json!({"queries": [{"query": "x", "filter": {"field": "part", "gte": "two"}}]}),
        "invalid_request",
        &["queries[0]: ", "part"],
    );
    // exactly the limit is fine; an unknown collection is a 404
    let (status, ok) = s.post(path, &json!({"queries": vec![q.clone(); 4]}));
    assert_eq!(
        (status, ok["answers"].as_array().map(Vec::len)),
        (200, Some(4)),
        "{ok}"
    );
    let (status, e) = s.post("/v1/collections/nope/query/batch", &json!({"queries": [q]}));
    assert_eq!(status, 404, "{e}");
}

#[test]
fn a_repeated_query_is_answered_from_the_cache() {
    let s = server(100);
    let q = json!({"query": "sourdough bread", "group_by": "document"});
    let texts = metric(&s, TEXTS);
    let (_, first) = s.post("/v1/collections/default/query", &q);
    let (_, second) = s.post("/v1/collections/default/query", &q);
    assert_eq!(first["results"], second["results"]);
    assert!(
        first["results"][0]["scores"]["vector"].is_number(),
        "{first}"
    );
    assert_eq!(metric(&s, TEXTS), texts + 1.0, "embedded once");
    let hit = r#"quarry_query_embed_cache_total{result="hit"}"#;
    let miss = r#"quarry_query_embed_cache_total{result="miss"}"#;
    assert_eq!((metric(&s, hit), metric(&s, miss)), (1.0, 1.0));
    // in a batch too: the cached text is not sent again, the new one is
    let (status, _) = s.post(
        "/v1/collections/default/query/batch",
        &json!({"queries": [q, {"query": "espresso"}]}),
    );
    assert_eq!(status, 200);
    assert_eq!(metric(&s, TEXTS), texts + 2.0);
    assert_eq!((metric(&s, hit), metric(&s, miss)), (2.0, 2.0));
}

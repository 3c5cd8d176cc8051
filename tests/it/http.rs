//! The HTTP API over a real socket: the router the server binary uses, bound to 127.0.0.1:0.

use quarry_index::{Engine, EngineOptions};
use quarry_server::{ServerOptions, router, serve};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::sync::Arc;

/// A server on a free loopback port, stopped when dropped.
pub(crate) struct TestServer {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _data: tempfile::TempDir,
}

impl TestServer {
    pub(crate) fn start(options: ServerOptions) -> Self {
        Self::start_with(options, EngineOptions::default())
    }

    /// A server over an engine with `engine_options` (embedders, timeouts).
    pub(crate) fn start_with(options: ServerOptions, engine_options: EngineOptions) -> Self {
        let data = crate::tmp();
        let engine = Arc::new(Engine::open(data.path(), engine_options).unwrap());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                serve(
                    listener,
                    router(engine, options),
                    async {
                        let _ = rx.await;
                    },
                    std::time::Duration::from_secs(5),
                )
                .await
                .unwrap();
            });
        });
        TestServer {
            url,
            stop: Some(tx),
            thread: Some(thread),
            _data: data,
        }
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = Client::new()
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    pub(crate) fn get(&self, path: &str) -> (u16, Value) {
        let r = Client::new()
            .get(format!("{}{path}", self.url))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn seeded() -> TestServer {
    let s = TestServer::start(ServerOptions::default());
    let docs: Vec<Value> = (0..30)
        .map(|i| {
            json!({"id": format!("doc-{i}"), "title": format!("Title {i}"),
                   // at most ~200 characters: one chunk each at the default 64 tokens (256 characters)
                   "text": format!("common words about retrieval number{i} and café résumé naïve {}", "filler ".repeat(i % 20))})
        })
        .collect();
    let (status, body) = s.post(
        "/v1/collections/default/documents",
        &json!({ "documents": docs }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["added"], 30);
    s
}

fn query(s: &TestServer, body: Value) -> (u16, Value) {
    s.post("/v1/collections/default/query", &body)
}

#[test]
fn hostile_query_strings_never_fail() {
    let s = seeded();
    let hostile = [
        "\"unbalanced quote",
        "title:retrieval",
        "text:common AND OR NOT",
        "((((retrieval",
        "retrieval)))]]",
        "[1 TO 5] {a TO b}",
        "AND",
        "OR OR OR",
        "-retrieval +common",
        "retrieval^10 common~2 wild*card ?",
        "\\ / \\\\ // :: ;;",
        "café résumé naïve 日本語 emoji 🦀",
        "number7",
        "\u{0}\u{1}\u{7f}",
        "the of and a",
        "!!!",
    ];
    for q in hostile {
        let (status, body) = query(&s, json!({"query": q, "mode": "bm25"}));
        assert_eq!(status, 200, "{q:?}: {body}");
        assert!(body["results"].is_array(), "{q:?}: {body}");
    }
    let long = "retrieval ".repeat(1100); // ~11 KB
    let (status, body) = query(&s, json!({"query": long, "mode": "bm25"}));
    assert_eq!(status, 200, "{body}");
    assert!(!body["results"].as_array().unwrap().is_empty());
    let (_, body) = query(&s, json!({"query": "number7", "mode": "bm25"}));
    assert_eq!(body["results"][0]["doc_id"], "doc-7");
    let (_, body) = query(
        &s,
        json!({"query": "résumé", "mode": "bm25", "top_k": 100, "group_by": "document"}),
    );
    assert_eq!(
        body["results"].as_array().unwrap().len(),
        30,
        "non-ASCII terms match in every document"
    );
    for empty in ["", "   ", "\n\t"] {
        let (status, body) = query(&s, json!({"query": empty}));
        assert_eq!(status, 400, "{empty:?}");
        assert_eq!(body["error"]["code"], "invalid_request");
        assert!(body["error"]["message"].as_str().unwrap().contains("empty"));
    }
}

#[test]
fn query_options_and_errors() {
    let s = seeded();
    let (status, body) = query(
        &s,
        json!({"query": "retrieval", "mode": "bm25", "top_k": 5}),
    );
    assert_eq!(status, 200);
    let hits = body["results"].as_array().unwrap();
    assert_eq!(hits.len(), 5);
    for (i, h) in hits.iter().enumerate() {
        assert_eq!(h["scores"]["bm25_rank"], i + 1);
        assert!(h["scores"]["bm25"].as_f64().unwrap() > 0.0);
        let [a, b] = [
            h["offsets"][0].as_u64().unwrap(),
            h["offsets"][1].as_u64().unwrap(),
        ];
        assert!(a < b);
    }
    assert!(
        hits.windows(2)
            .all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64())
    );

    // hybrid answers from BM25 until vectors exist, and says so
    let (status, body) = query(&s, json!({"query": "retrieval"}));
    assert_eq!(status, 200);
    assert!(body["warnings"][0].as_str().unwrap().contains("BM25"));
    assert_eq!(body["degraded"], false);

    let (status, body) = query(
        &s,
        json!({"query": "retrieval", "group_by": "document", "top_k": 1000, "mode": "bm25"}),
    );
    assert_eq!(status, 200);
    let ids = crate::doc_ids(&body);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (30, 30));

    for (bad, code) in [
        (json!({"query": "x", "top_k": 0}), "invalid_request"),
        (json!({"query": "x", "top_k": 1001}), "invalid_request"),
        (json!({"query": "x", "mode": "semantic"}), "invalid_json"),
        (json!({"query": "x", "topk": 3}), "invalid_json"),
        (json!({"text": "x"}), "invalid_json"),
        (json!({"query": "x", "mode": "vector"}), "invalid_request"),
        (
            json!({"query": "x", "filter": {"lang": "en"}}),
            "invalid_request",
        ),
    ] {
        let (status, body) = query(&s, bad.clone());
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], code, "{bad}: {body}");
    }
    // diversify: λ out of range is a 400 naming the option; without vectors, a warning
    for bad in [
        json!({"query": "x", "diversify": {"lambda": 1.5}}),
        json!({"query": "x", "diversify": {"lambda": -0.1}}),
    ] {
        let (status, body) = query(&s, bad.clone());
        assert_eq!(status, 400, "{bad}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("diversify"), "{bad}: {body}");
    }
    let (status, body) = query(&s, json!({"query": "x", "diversify": 0.7}));
    assert_eq!(status, 400, "{body}");
    let (status, body) = query(
        &s,
        json!({"query": "retrieval", "mode": "bm25", "diversify": {"lambda": 0.7}}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("diversify:"),
        "{body}"
    );
    assert_eq!(body["results"].as_array().unwrap().len(), 10);
    let (status, body) = s.post("/v1/collections/missing/query", &json!({"query": "x"}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("collection_not_found"))
    );
    let (status, body) = s.post("/v1/collections/bad%20name!/query", &json!({"query": "x"}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let r = Client::new()
        .post(format!("{}/v1/collections/default/query", s.url))
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = Client::new()
        .post(format!("{}/v1/collections/default/query", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (status, body) = s.get("/v1/nothing-here");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("route_not_found"))
    );
    let (status, _) = s.get("/v1/collections/default/query");
    assert_eq!(status, 405);
}

#[test]
fn body_limit_gives_413() {
    let s = TestServer::start(ServerOptions {
        body_limit_bytes: 4096,
        ..ServerOptions::default()
    });
    let (status, body) = s.post(
        "/v1/collections/default/documents",
        &json!({"documents": [{"id": "x", "text": "y".repeat(10_000)}]}),
    );
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let (status, body) = s.get("/v1/collections");
    assert_eq!(status, 200);
    assert_eq!(body["collections"], json!([]), "nothing was written");
}

#[test]
fn documents_upsert_delete_and_collections() {
    let s = seeded();
    let (status, body) = s.get("/v1/collections/default");
    assert_eq!(status, 200);
    assert_eq!(
        (body["documents"].as_u64(), body["chunks"].as_u64()),
        (Some(30), Some(30))
    );
    let (_, list) = s.get("/v1/collections");
    assert_eq!(list["collections"][0]["name"], "default");

    // Same documents again: unchanged, nothing written.
    let (_, again) = s.post("/v1/collections/default/documents", &json!({"documents": [{"id": "doc-1", "title": "Title 1", "text": format!("common words about retrieval number1 and café résumé naïve {}", "filler ")}]}));
    assert_eq!(again["unchanged"], 1, "{again}");
    // Changed text replaces the document's chunks.
    let (_, upd) = s.post(
        "/v1/collections/default/documents",
        &json!({"documents": [{"id": "doc-1", "text": "brandnewword"}]}),
    );
    assert_eq!(upd["updated"], 1);
    let (_, body) = query(&s, json!({"query": "number1", "mode": "bm25"}));
    assert!(crate::doc_ids(&body).iter().all(|d| d != "doc-1"));
    let (_, body) = query(&s, json!({"query": "brandnewword", "mode": "bm25"}));
    assert_eq!(crate::doc_ids(&body), ["doc-1"]);

    // A bad document rejects the whole batch, naming it.
    let (status, body) = s.post(
        "/v1/collections/default/documents",
        &json!({"documents": [{"id": "ok", "text": "fine"}, {"text": "no id"}]}),
    );
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("documents[1]"),
        "{body}"
    );
    let (status, _) = s.post(
        "/v1/collections/default/documents",
        &json!({"documents": []}),
    );
    assert_eq!(status, 400);
    let (_, body) = query(&s, json!({"query": "fine", "mode": "bm25"}));
    assert!(
        crate::doc_ids(&body).is_empty(),
        "nothing of the rejected batch was written"
    );

    // Ids with slashes work in the delete route.
    s.post(
        "/v1/collections/default/documents",
        &json!({"documents": [{"id": "a/b.md", "text": "slashword"}]}),
    );
    let r = Client::new()
        .delete(format!("{}/v1/collections/default/documents/a/b.md", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = Client::new()
        .delete(format!("{}/v1/collections/default/documents/a/b.md", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let (_, body) = query(&s, json!({"query": "slashword", "mode": "bm25"}));
    assert!(crate::doc_ids(&body).is_empty());
    let r = Client::new()
        .delete(format!("{}/v1/collections/nope/documents/x", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[test]
fn request_ids_health_and_readiness() {
    let s = TestServer::start(ServerOptions::default());
    let r = Client::new()
        .get(format!("{}/healthz", s.url))
        .header("x-request-id", "abc-123")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = Client::new()
        .get(format!("{}/readyz", s.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "a uuid: {generated}");
    let r = Client::new()
        .get(format!("{}/v1/nope", s.url))
        .send()
        .unwrap();
    assert!(
        r.headers().contains_key("x-request-id"),
        "errors carry the request id too"
    );
}

#[test]
fn highlights_citations_and_passages() {
    // BM25 without the text around a chunk, so the chunk holding a word ranks first
    let mut engine = EngineOptions::default();
    engine.chunk.context_chars = 0;
    let s = TestServer::start_with(ServerOptions::default(), engine);
    // ten paragraphs of ~200 characters: one chunk each at the default 64 tokens
    let paras: Vec<String> = (0..10)
        .map(|i| {
            format!(
                "paragraph{i}{}",
                " plain filler words running along".repeat(5)
            )
        })
        .collect();
    let text = paras.join("\n\n");
    let (status, body) = s.post(
        "/v1/collections/default/documents",
        &json!({"documents": [{"id": "long", "title": "Long", "text": text}]}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = query(
        &s,
        json!({"query": "paragraph5 runs", "mode": "bm25", "top_k": 1, "highlight": true,
               "citation": true, "expand": {"neighbors": 1}}),
    );
    assert_eq!(status, 200, "{body}");
    let h = &body["results"][0];
    let hit_text = h["text"].as_str().unwrap();
    assert!(hit_text.starts_with("paragraph5"), "{h}");
    // every highlight is the query's word or a form of "run"
    for r in h["highlights"].as_array().unwrap() {
        let (a, b) = (
            r[0].as_u64().unwrap() as usize,
            r[1].as_u64().unwrap() as usize,
        );
        assert!(["paragraph5", "running"].contains(&&hit_text[a..b]), "{r}");
    }
    assert_eq!(h["highlights"].as_array().unwrap().len(), 6, "{h}");
    assert_eq!(h["citation"]["doc_id"], "long");
    assert_eq!(h["citation"]["title"], "Long");
    assert_eq!(h["citation"]["offsets"], h["offsets"]);
    // the passage: paragraphs 4 to 6, each gap between chunks one newline
    let p = &h["passage"];
    let passage = p["text"].as_str().unwrap();
    assert_eq!(passage, paras[4..=6].join("\n"));
    let (a, b) = (
        p["offsets"][0].as_u64().unwrap() as usize,
        p["offsets"][1].as_u64().unwrap() as usize,
    );
    assert_eq!(&text[a..b], paras[4..=6].join("\n\n"));
    assert_eq!(p["highlights"].as_array().unwrap().len(), 16, "{p}");

    // without the options, none of it
    let (_, body) = query(
        &s,
        json!({"query": "paragraph5", "mode": "bm25", "top_k": 1}),
    );
    let h = body["results"][0].as_object().unwrap();
    for key in ["highlights", "citation", "passage", "passage_ref"] {
        assert!(!h.contains_key(key), "{key}");
    }
    for (bad, names) in [
        (json!({"expand": {"neighbors": 0}}), "expand.neighbors"),
        (json!({"expand": {"neighbors": 11}}), "expand.neighbors"),
        (json!({"expand": {"tokens": 3}}), "tokens"),
        // a JSON type error says where, as for every option
        (json!({"highlight": "yes"}), "expected a boolean"),
    ] {
        let mut req = json!({"query": "x"});
        req.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let (status, body) = query(&s, req);
        assert_eq!(status, 400, "{bad}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{bad}: {message}");
    }
}

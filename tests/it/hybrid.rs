//! Hybrid retrieval end to end: fusion choices over HTTP, the OpenAI-compatible embeddings route,
//! a provider that times out (queries degrade to BM25), and the CLI's embedding cache.

use crate::http::TestServer;
use quarry_core::Embedder;
use quarry_embed::{HashEmbedder, OpenAiEmbedder, OpenAiOptions};
use quarry_index::{EmbedderSource, EngineOptions};
use quarry_server::ServerOptions;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Fixed(Arc<dyn Embedder>);
impl EmbedderSource for Fixed {
    fn get(&self, name: &str) -> quarry_index::Result<Option<Arc<dyn Embedder>>> {
        Ok((name == "e").then(|| self.0.clone()))
    }
}

pub(crate) fn engine_options(e: Arc<dyn Embedder>) -> EngineOptions {
    EngineOptions {
        embedder: "e".into(),
        embedders: Some(Arc::new(Fixed(e))),
        ..EngineOptions::default()
    }
}

const DOCS: [(&str, &str, &str); 5] = [
    (
        "a",
        "Rust ownership",
        "Ownership and borrowing make memory safety checkable at compile time.",
    ),
    (
        "b",
        "Garbage collection",
        "A tracing collector finds unreachable objects and frees their memory.",
    ),
    (
        "c",
        "Sourdough",
        "Flour, water and salt ferment overnight into a tangy loaf of bread.",
    ),
    (
        "d",
        "Borrow checker",
        "The borrow checker rejects programs with aliasing mutable references.",
    ),
    (
        "e",
        "Espresso",
        "Hot water is forced through finely ground coffee under pressure.",
    ),
];

fn seed(s: &TestServer) {
    let docs: Vec<Value> = DOCS
        .iter()
        .map(|(id, title, text)| json!({"id": id, "title": title, "text": text}))
        .collect();
    let (status, body) = s.post(
        "/v1/collections/default/documents",
        &json!({"documents": docs}),
    );
    assert_eq!(status, 200, "{body}");
}

fn ids(v: &Value) -> Vec<String> {
    crate::doc_ids(v)
}

#[test]
fn hybrid_queries_fuse_both_retrievers_with_the_requested_fusion() {
    let s = TestServer::start_with(
        ServerOptions::default(),
        engine_options(Arc::new(HashEmbedder::new(64).unwrap())),
    );
    seed(&s);
    let q = |body: Value| s.post("/v1/collections/default/query", &body);
    let (status, hybrid) = q(json!({"query": "memory safety", "group_by": "document"}));
    assert_eq!(status, 200, "{hybrid}");
    assert_eq!(hybrid["degraded"], false);
    assert!(
        hybrid["embedding_version"]
            .as_str()
            .unwrap()
            .starts_with("e-")
    );
    let top = &hybrid["results"][0];
    assert!(
        top["scores"]["bm25"].is_number() && top["scores"]["vector"].is_number(),
        "{top}"
    );
    assert!(top["scores"]["bm25_rank"].is_number() && top["scores"]["vector_rank"].is_number());
    // The default, adaptive (a weighted fusion over max-normalised scores with the query's own
    // alpha): a hit first in both lists scores (1 − alpha) · 1 + alpha · 1 = 1; with RRF (k = 60)
    // it scores 2/61.
    let first_in_both = top["scores"]["bm25_rank"] == 1 && top["scores"]["vector_rank"] == 1;
    if first_in_both {
        assert!((top["score"].as_f64().unwrap() - 1.0).abs() < 1e-6, "{top}");
    }
    let (_, rrf) = q(json!({"query": "memory safety", "group_by": "document",
                             "fusion": {"method": "rrf"}}));
    let rrf_top = &rrf["results"][0];
    if rrf_top["scores"]["bm25_rank"] == 1 && rrf_top["scores"]["vector_rank"] == 1 {
        assert!(
            (rrf_top["score"].as_f64().unwrap() - 2.0 / 61.0).abs() < 1e-6,
            "{rrf_top}"
        );
    }
    // weighted scores are convex combinations of scores divided by their list's maximum: at most
    // 1 (a negative cosine stays negative)
    let scores: Vec<f64> = hybrid["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["score"].as_f64().unwrap())
        .collect();
    assert!(scores.iter().all(|s| *s <= 1.0 + 1e-6), "{scores:?}");
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    // documents only the vector side found are there too
    assert!(ids(&hybrid).len() >= 2, "{hybrid}");

    // weighted with alpha = 1 is the vector ranking, alpha = 0 puts BM25 matches first
    let (_, vector) =
        q(json!({"query": "memory safety", "mode": "vector", "group_by": "document"}));
    let (_, alpha1) = q(json!({"query": "memory safety", "group_by": "document",
                                "fusion": {"method": "weighted", "alpha": 1.0}}));
    // (documents sharing no word with the query tie at cosine 0, and ties may order differently)
    assert_eq!(ids(&alpha1)[0], ids(&vector)[0]);
    assert_eq!(ids(&alpha1).len(), ids(&vector).len());
    let (_, bm25) = q(json!({"query": "memory safety", "mode": "bm25", "group_by": "document"}));
    let (_, alpha0) = q(json!({"query": "memory safety", "group_by": "document",
                                "fusion": {"method": "weighted", "alpha": 0.0}}));
    let n = ids(&bm25).len();
    assert!(n >= 1);
    let mut top: Vec<String> = ids(&alpha0)[..n].to_vec();
    let mut want = ids(&bm25);
    top.sort();
    want.sort();
    assert_eq!(top, want, "alpha = 0 ranks the BM25 matches first");

    for bad in [
        json!({"method": "weighted", "alpha": 2}),
        json!({"method": "rrf", "k": -1}),
        json!({"method": "max"}),
        json!("rrf"),
    ] {
        let (status, body) = q(json!({"query": "memory", "fusion": bad}));
        assert_eq!(status, 400, "{bad} → {body}");
    }
}

#[test]
fn embeddings_route_speaks_the_openai_format() {
    let s = TestServer::start_with(
        ServerOptions::default(),
        engine_options(Arc::new(HashEmbedder::new(32).unwrap())),
    );
    let model = "blake3-bag-of-words";
    let (status, body) = s.post(
        "/v1/embeddings",
        &json!({"input": ["red apple", "green pear"], "model": model}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], model);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let floats: Vec<f32> = data[1]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(floats.len(), 32);
    assert_eq!(data[1]["index"], 1);
    let want = HashEmbedder::new(32)
        .unwrap()
        .embed(&["green pear"], quarry_core::InputKind::Document)
        .unwrap();
    assert_eq!(floats, want[0]);

    // a single string, and base64 little-endian floats as OpenAI clients ask for
    let (status, b64) = s.post(
        "/v1/embeddings",
        &json!({"input": "green pear", "model": "e", "encoding_format": "base64"}),
    );
    assert_eq!(status, 200, "{b64}");
    let decoded = decode_base64(b64["data"][0]["embedding"].as_str().unwrap());
    let back: Vec<f32> = decoded
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(back, want[0]);

    // errors in OpenAI's shape (type, param) around quarry's code and message
    for (body, code, param) in [
        (json!({"input": "x", "model": "gpt-4"}), 404, json!("model")),
        (json!({"input": [], "model": model}), 400, json!("input")),
        (json!({"input": [""], "model": model}), 400, json!("input")),
        (
            json!({"input": [[1, 2, 3]], "model": model}),
            400,
            json!("input"),
        ),
        (
            json!({"input": [1, 2, 3], "model": model}),
            400,
            json!("input"),
        ),
        (
            json!({"input": [1, "a"], "model": model}),
            400,
            json!("input"),
        ),
        (
            json!({"input": "x", "model": model, "dimensions": 7}),
            400,
            json!("dimensions"),
        ),
        (
            json!({"input": "x", "model": model, "encoding_format": "hex"}),
            400,
            json!("encoding_format"),
        ),
        (json!({"model": model}), 400, json!(null)),
    ] {
        let (status, answer) = s.post("/v1/embeddings", &body);
        assert_eq!(status, code, "{body} → {answer}");
        let e = &answer["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(e["type"], "invalid_request_error", "{answer}");
        assert_eq!(e["param"], param, "{body} → {answer}");
    }
    // token ids are refused, saying why and what to send instead
    let (_, answer) = s.post(
        "/v1/embeddings",
        &json!({"input": [[1, 2]], "model": model}),
    );
    let m = answer["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("token ids") && m.contains("check_embedding_ctx_length"),
        "{m}"
    );

    // the served model, as OpenAI lists models, by its name or the embedder's
    let (status, list) = s.get("/v1/models");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{list}");
    assert_eq!(
        (&data[0]["id"], &data[0]["object"]),
        (&json!(model), &json!("model"))
    );
    assert_eq!(data[0]["quarry"]["dimensions"], 32);
    let embedder = data[0]["quarry"]["embedder"].as_str().unwrap().to_owned();
    for id in [model, embedder.as_str()] {
        let (status, one) = s.get(&format!("/v1/models/{id}"));
        assert_eq!((status, &one), (200, &data[0]), "{id}");
    }
    let (status, missing) = s.get("/v1/models/gpt-4");
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["error"]["code"], "model_not_found");
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= u32::from(val(*c)) << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// Dimensions of the fake provider's vectors.
const PROVIDER_DIMS: usize = 16;

/// An OpenAI-compatible embeddings server on a real socket that answers with hashing vectors, and
/// sleeps before answering while `slow` is set.
struct FakeProvider {
    url: String,
    slow: Arc<AtomicBool>,
}

impl FakeProvider {
    /// An OpenAI-compatible embedder of this provider's vectors, without retries.
    fn embedder(&self) -> Arc<dyn Embedder> {
        let mut o = OpenAiOptions::new(self.url.clone(), "fake");
        o.dimensions = Some(PROVIDER_DIMS);
        o.max_retries = 0;
        o.timeout = Duration::from_secs(10);
        Arc::new(OpenAiEmbedder::new(o).unwrap())
    }
}

fn fake_provider() -> FakeProvider {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let slow = Arc::new(AtomicBool::new(false));
    let flag = slow.clone();
    std::thread::spawn(move || {
        let hash = HashEmbedder::new(PROVIDER_DIMS).unwrap();
        let hash = Arc::new(hash);
        for stream in listener.incoming().flatten() {
            let slow = flag.load(Ordering::SeqCst);
            let hash = hash.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; len];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                if slow {
                    std::thread::sleep(Duration::from_secs(3));
                }
                let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let inputs: Vec<String> = match &req["input"] {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    _ => vec![],
                };
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let vectors = hash.embed(&refs, quarry_core::InputKind::Document).unwrap();
                let data: Vec<Value> = vectors
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
                    .collect();
                let out = json!({"object": "list", "data": data, "model": "fake"}).to_string();
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
                    out.len()
                );
            });
        }
    });
    FakeProvider { url, slow }
}

#[test]
fn a_provider_that_times_out_degrades_queries_to_bm25() {
    let provider = fake_provider();
    let embedder = provider.embedder();
    let options = EngineOptions {
        query_embed_timeout: Duration::from_millis(300),
        // the query-embedding cache would answer the repeated text without the provider
        query_embed_cache_entries: 0,
        ..engine_options(embedder)
    };
    let s = TestServer::start_with(ServerOptions::default(), options);
    seed(&s);
    let q = json!({"query": "borrow checker", "group_by": "document"});
    let (status, ok) = s.post("/v1/collections/default/query", &q);
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["degraded"], false);
    assert!(ok["results"][0]["scores"]["vector"].is_number());

    provider.slow.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let (status, slow) = s.post("/v1/collections/default/query", &q);
    let took = started.elapsed();
    assert_eq!(status, 200, "{slow}");
    assert_eq!(slow["degraded"], true, "{slow}");
    assert!(
        took < Duration::from_secs(2),
        "answered in {took:?}, not after the provider"
    );
    let warning = slow["warnings"][0].as_str().unwrap();
    assert!(warning.contains("embed_timeout_ms"), "{warning}");
    assert_eq!(ids(&slow)[0], "d", "BM25 answers");
    assert!(slow["results"][0]["scores"]["vector"].is_null());
    assert!(slow["results"][0]["scores"]["bm25"].is_number());
    // mode=vector degrades the same way rather than failing
    let (status, v) = s.post(
        "/v1/collections/default/query",
        &json!({"query": "borrow checker", "mode": "vector"}),
    );
    assert_eq!((status, v["degraded"].clone()), (200, json!(true)), "{v}");
}

#[test]
fn cli_reingest_embeds_nothing_and_a_restart_answers_identically() {
    let data = crate::tmp();
    let docs = crate::tmp();
    let files: Vec<(String, Vec<u8>)> = DOCS
        .iter()
        .map(|(id, title, text)| {
            (
                format!("{id}.md"),
                format!("# {title}\n\n{text}\n").into_bytes(),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    crate::write_tree(docs.path(), &refs);
    let root = crate::path_str(docs.path());
    let first = crate::run_json(data.path(), &["ingest", "--json", &root]);
    assert_eq!(first["added"], 5);
    assert_eq!(first["embedded"], 5, "{first}");
    // the hash embedder counts no tokens (the local model's are in tests/it/versions.rs); the
    // time in the embedder is part of the run's
    assert_eq!(first["tokens_embedded"], 0, "{first}");
    let embed_seconds = first["embed_seconds"].as_f64().unwrap();
    assert!(embed_seconds > 0.0 && embed_seconds <= first["seconds"].as_f64().unwrap());
    let again = crate::run_json(data.path(), &["ingest", "--json", &root]);
    assert_eq!(
        (again["unchanged"].clone(), again["embedded"].clone()),
        (json!(5), json!(0))
    );
    assert_eq!(
        (
            again["tokens_embedded"].clone(),
            again["embed_seconds"].clone()
        ),
        (json!(0), json!(0.0)),
        "{again}"
    );

    // a copy of a file under another name: same title and text, so a cache hit
    std::fs::write(docs.path().join("copy.md"), &files[0].1).unwrap();
    let copy = crate::run_json(data.path(), &["ingest", "--json", &root]);
    assert_eq!(
        (
            copy["added"].clone(),
            copy["embedded"].clone(),
            copy["cache_hits"].clone()
        ),
        (json!(1), json!(0), json!(1)),
        "{copy}"
    );

    let query = ["query", "--json", "--group-by", "document", "memory safety"];
    let one = crate::run_json(data.path(), &query);
    let two = crate::run_json(data.path(), &query);
    assert_eq!(one["results"], two["results"]);
    assert!(one["results"][0]["scores"]["vector"].is_number());
    let status = crate::run_json(data.path(), &["status", "--json"]);
    let text = status.to_string();
    assert!(text.contains("\"embedder\":\"hash\""), "{text}");
}

/// A write that outlives `request_timeout_ms` answers 504 and commits nothing, even after its
/// embedder answers; the same write sent with `wait=false` answers 202 with a task id at once,
/// runs past the timeout, and its task says how it went.
#[test]
fn a_timed_out_write_commits_nothing_and_wait_false_runs_it_as_a_task() {
    let provider = fake_provider();
    let embedder = provider.embedder();
    let s = TestServer::start_with(
        ServerOptions {
            request_timeout: Duration::from_secs(1),
            ..ServerOptions::default()
        },
        engine_options(embedder),
    );
    seed(&s);
    provider.slow.store(true, Ordering::SeqCst);
    let doc = json!({"documents": [{"id": "late", "text": "latecomerword arrives"}]});
    let started = Instant::now();
    let (status, body) = s.post("/v1/collections/default/documents", &doc);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (504, Some("timeout")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The provider answers 3 s after the call; wait past that: still nothing committed.
    std::thread::sleep(Duration::from_secs(4));
    let bm25 = json!({"query": "latecomerword", "mode": "bm25"});
    let (_, found) = s.post("/v1/collections/default/query", &bm25);
    assert!(
        ids(&found).is_empty(),
        "the timed-out write was committed: {found}"
    );
    let (_, stats) = s.get("/v1/collections/default");
    assert_eq!(stats["documents"], DOCS.len(), "{stats}");

    // (Another text: the vector of the first reached the embedding cache when the provider
    // answered, though its document was not committed.)
    let doc = json!({"documents": [{"id": "late", "text": "latecomerword arrives at last"}]});
    let started = Instant::now();
    let r = reqwest::blocking::Client::new()
        .post(format!(
            "{}/v1/collections/default/documents?wait=false",
            s.url
        ))
        .json(&doc)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let task: Value = r.json().unwrap();
    assert_eq!(task["state"], "running", "{task}");
    assert_eq!(
        location,
        format!("/v1/tasks/{}", task["task_id"].as_str().unwrap())
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let (status, t) = s.get(&location);
        assert_eq!(status, 200, "{t}");
        if t["state"] != "running" {
            break t;
        }
        assert!(Instant::now() < deadline, "task still running: {t}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["summary"]["added"], 1, "{done}");
    assert_eq!(
        done["summary"]["embedded"], 1,
        "an admin sees the embedding counts: {done}"
    );
    assert!(
        done["finished_at"].as_u64() >= done["created_at"].as_u64(),
        "{done}"
    );
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "it ran past the request timeout"
    );
    let (_, found) = s.post("/v1/collections/default/query", &bm25);
    assert_eq!(ids(&found), ["late"], "{found}");

    let (status, missing) = s.get("/v1/tasks/no-such-task");
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("task_not_found"))
    );
    let (status, bad) = s.post("/v1/collections/default/documents?wait=maybe", &doc);
    assert_eq!(status, 400, "{bad}");
    // A task that fails says why.
    let r = reqwest::blocking::Client::new()
        .post(format!(
            "{}/v1/collections/default/documents?wait=false",
            s.url
        ))
        .json(&json!({"documents": [{"text": "no id"}]}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let task: Value = r.json().unwrap();
    let path = format!("/v1/tasks/{}", task["task_id"].as_str().unwrap());
    let failed = loop {
        let (_, t) = s.get(&path);
        if t["state"] != "running" {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "invalid_request", "{failed}");
}

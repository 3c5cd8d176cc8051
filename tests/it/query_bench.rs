//! A measurement, not in CI: the query-embedding cache and batch queries of a real `quarry serve`
//! over SciFact embedded by all-MiniLM-L6-v2, over real HTTP. Run it by hand, in release mode:
//!
//! ```sh
//! QUARRY_BENCH_DATA_DIR=./quarry-data QUARRY_DATASETS=./datasets \
//!   cargo test --release --test it query_bench:: -- --ignored --nocapture
//! ```
//!
//! `QUARRY_BENCH_DATA_DIR` is a data dir where `quarry eval --dataset $QUARRY_DATASETS/scifact`
//! (embedder `local`) has ingested and embedded the corpus (collection `beir-scifact`); it is
//! copied to a temporary directory first and never written. The model must be in the model cache
//! (`quarry model pull`).
//!
//! 1. **Cache.** A server with the default cache sends the 300 SciFact test queries one at a
//!    time (`hybrid`, `group_by=document`, `top_k` 10), twice: the first pass embeds every query
//!    (misses), the second finds every vector cached (hits). It prints p50/p95 of each pass and
//!    checks both passes answer the same hits and `/metrics` counts 300 hits.
//! 2. **Batches.** A server with the cache off (`query.embed_cache_entries = 0`) answers
//!    `QUARRY_BENCH_ROUNDS` (5) rounds of 32 distinct test queries, each round once as 32
//!    sequential single queries and once as one batch (in turn first), checking the batch's hits
//!    equal the single queries'. It prints the medians over the rounds of both times and of their
//!    ratio (the batch's throughput over the sequential one's).
//!
//! A second measurement, `batches_with_a_remote_provider`, needs only `QUARRY_DATASETS` and the
//! model: the same batches against a server whose embedder is an OpenAI-compatible provider
//! `QUARRY_BENCH_PROVIDER_MS` (50) milliseconds away. The provider is a second `quarry serve`
//! running all-MiniLM-L6-v2 (`/v1/embeddings`) on the same cores, behind a proxy that holds each
//! request that long (the round trip to a hosted provider); the collection is the first
//! `QUARRY_BENCH_DOCS` (300) SciFact documents, embedded through the provider.

use crate::{Served, read_request, run_env, spawn_serve, tmp, write_tree};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Queries per batch (the default `server.max_batch_queries`).
const BATCH: usize = 32;

/// `src` copied into `dst`, files and folders.
fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// The texts of the SciFact test queries (those with judgments in `qrels/test.tsv`), in file order.
fn test_queries(scifact: &Path) -> Vec<String> {
    let qrels = std::fs::read_to_string(scifact.join("qrels/test.tsv")).unwrap();
    let judged: std::collections::HashSet<&str> = qrels
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .collect();
    std::fs::read_to_string(scifact.join("queries.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let q: Value = serde_json::from_str(l).ok()?;
            judged
                .contains(q["_id"].as_str()?)
                .then(|| q["text"].as_str().map(str::to_owned))?
        })
        .collect()
}

fn body(text: &str) -> Value {
    json!({"query": text, "mode": "hybrid", "group_by": "document", "top_k": 10})
}

/// The doc ids an answer ranks, after checking it was not degraded.
fn ranked(answer: &Value) -> Vec<String> {
    assert_eq!(answer["degraded"], false, "{answer}");
    crate::doc_ids(answer)
}

/// One query over HTTP: its doc ids and its latency in milliseconds.
fn single(client: &Client, url: &str, text: &str) -> (Vec<String>, f64) {
    single_in(client, url, "beir-scifact", text)
}

fn single_in(client: &Client, url: &str, collection: &str, text: &str) -> (Vec<String>, f64) {
    let t = Instant::now();
    let resp = client
        .post(format!("{url}/v1/collections/{collection}/query"))
        .json(&body(text))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    let answer: Value = resp.json().unwrap();
    (ranked(&answer), t.elapsed().as_secs_f64() * 1e3)
}

/// `rounds` rounds of [`BATCH`] distinct queries of `queries` against the server at `url`, each
/// as sequential single queries and as one batch (in turn first), checking both answer the same;
/// prints each round and the medians.
fn batch_rounds(client: &Client, url: &str, collection: &str, queries: &[String], rounds: usize) {
    let (mut sequential, mut batched, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let texts: Vec<String> = (0..BATCH)
            .map(|i| queries[(round * BATCH + i) % queries.len()].clone())
            .collect();
        let run_sequential = || {
            let t = Instant::now();
            let ids: Vec<Vec<String>> = texts
                .iter()
                .map(|q| single_in(client, url, collection, q).0)
                .collect();
            (ids, t.elapsed().as_secs_f64() * 1e3)
        };
        let ((one_by_one, seq_ms), (together, batch_ms)) = if round % 2 == 0 {
            let s = run_sequential();
            (s, batch(client, url, collection, &texts))
        } else {
            let b = batch(client, url, collection, &texts);
            (run_sequential(), b)
        };
        assert_eq!(one_by_one, together, "a batch answers as its queries alone");
        eprintln!(
            "  round {round}: 32 sequential {seq_ms:.0} ms, one batch {batch_ms:.0} ms, {:.2}x",
            seq_ms / batch_ms
        );
        sequential.push(seq_ms);
        batched.push(batch_ms);
        ratios.push(seq_ms / batch_ms);
    }
    eprintln!(
        "batches of {BATCH} distinct SciFact test queries (cache off), {rounds} rounds, medians: 32 sequential queries {:.0} ms ({:.0} q/s), one batch {:.0} ms ({:.0} q/s); batch throughput / sequential: {:.2}x",
        percentile(&sequential, 50.0),
        BATCH as f64 * 1e3 / percentile(&sequential, 50.0),
        percentile(&batched, 50.0),
        BATCH as f64 * 1e3 / percentile(&batched, 50.0),
        percentile(&ratios, 50.0),
    );
}

/// One batch over HTTP: the doc ids of each answer, and its latency in milliseconds.
fn batch(
    client: &Client,
    url: &str,
    collection: &str,
    texts: &[String],
) -> (Vec<Vec<String>>, f64) {
    let queries: Vec<Value> = texts.iter().map(|t| body(t)).collect();
    let t = Instant::now();
    let resp = client
        .post(format!("{url}/v1/collections/{collection}/query/batch"))
        .json(&json!({ "queries": queries }))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    let answer: Value = resp.json().unwrap();
    let ids = answer["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(ranked)
        .collect();
    (ids, t.elapsed().as_secs_f64() * 1e3)
}

fn percentile(ms: &[f64], p: f64) -> f64 {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    quarry_core::stats::percentile(&sorted, p)
}

fn serve(data: &Path, env: &[(&str, &str)]) -> (Served, Client) {
    let server = spawn_serve(data, &["--addr", "127.0.0.1:0"], env);
    let client = Client::new();
    // Not measured: the server opens the collection (rebuilding a BM25 index of an older layout)
    // and loads the model; until /readyz says so, a query may find nothing.
    let deadline = Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let ready = client.get(format!("{}/readyz", server.url)).send();
        if ready.is_ok_and(|r| r.status().is_success())
            && !single(&client, &server.url, "warm-up query about cells")
                .0
                .is_empty()
        {
            break (server, client);
        }
        assert!(
            Instant::now() < deadline,
            "the server was not ready in 10 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[test]
#[ignore = "a measurement: release mode, SciFact with MiniLM vectors; see the module doc"]
fn query_cache_and_batches_on_scifact() {
    if cfg!(debug_assertions) {
        panic!(
            "measure in release mode: cargo test --release --test it query_bench:: -- --ignored --nocapture"
        );
    }
    let Some(source) = std::env::var_os("QUARRY_BENCH_DATA_DIR") else {
        eprintln!("skipped: set QUARRY_BENCH_DATA_DIR (see the module doc)");
        return;
    };
    let Some(scifact) = crate::scifact("query_bench", &["queries.jsonl", "qrels/test.tsv"]) else {
        return;
    };
    let rounds: usize = std::env::var("QUARRY_BENCH_ROUNDS")
        .map_or(5, |v| v.parse().expect("QUARRY_BENCH_ROUNDS is a number"));
    let queries = test_queries(&scifact);
    assert_eq!(queries.len(), 300);
    let data = tmp();
    copy_dir(Path::new(&source), data.path());

    // 1. The cache: every test query twice.
    let (server, client) = serve(data.path(), &[("QUARRY_EMBEDDER", "local")]);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for pass in [&mut first, &mut second] {
        for q in &queries {
            pass.push(single(&client, &server.url, q));
        }
    }
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.0, b.0, "a cached vector answers as the embedded one");
    }
    let metrics = client
        .get(format!("{}/metrics", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("quarry_query_embed_cache_total{result=\"hit\"} 300"),
        "{metrics}"
    );
    server.stop();
    let ms = |pass: &[(Vec<String>, f64)]| pass.iter().map(|p| p.1).collect::<Vec<f64>>();
    let (miss, hit) = (ms(&first), ms(&second));
    eprintln!(
        "query-embedding cache: 300 SciFact test queries, hybrid, group_by document, top_k 10, one at a time over HTTP"
    );
    eprintln!(
        "  first pass (embedded):  p50 {:.2} ms, p95 {:.2} ms",
        percentile(&miss, 50.0),
        percentile(&miss, 95.0)
    );
    eprintln!(
        "  second pass (cached):   p50 {:.2} ms, p95 {:.2} ms",
        percentile(&hit, 50.0),
        percentile(&hit, 95.0)
    );

    // 2. Batches, the cache off: 32 sequential queries against one batch of the same.
    let (server, client) = serve(
        data.path(),
        &[
            ("QUARRY_EMBEDDER", "local"),
            ("QUARRY_QUERY__EMBED_CACHE_ENTRIES", "0"),
        ],
    );
    batch_rounds(&client, &server.url, "beir-scifact", &queries, rounds);
    server.stop();
}

/// Requests the latency proxy relayed.
static RELAYED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A proxy in front of `upstream` (`http://host:port`) that holds each request `delay` before
/// passing it on: a provider that far away. Keep-alive connections, one thread each. Returns its
/// base URL.
fn latency_proxy(upstream: String, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let upstream = upstream.clone();
            std::thread::spawn(move || relay(stream, &upstream, delay));
        }
    });
    format!("http://{addr}")
}

/// Relays the requests of one connection (POSTs with a body) until the client closes it.
fn relay(stream: TcpStream, upstream: &str, delay: Duration) {
    let client = Client::new();
    let mut reader = BufReader::new(&stream);
    while let Some((request_line, body)) = read_request(&mut reader) {
        RELAYED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::thread::sleep(delay);
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let resp = client
            .post(format!("{upstream}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().unwrap();
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            bytes.len()
        );
        let mut out = &stream;
        if out.write_all(head.as_bytes()).is_err() || out.write_all(&bytes).is_err() {
            return;
        }
    }
}

#[test]
#[ignore = "a measurement: release mode, SciFact and the model; see the module doc"]
fn batches_with_a_remote_provider() {
    if cfg!(debug_assertions) {
        panic!(
            "measure in release mode: cargo test --release --test it query_bench:: -- --ignored --nocapture"
        );
    }
    let Some(scifact) = crate::scifact(
        "query_bench",
        &["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"],
    ) else {
        return;
    };
    let env_num = |name: &str, default: usize| -> usize {
        std::env::var(name).map_or(default, |v| v.parse().expect("a number"))
    };
    let rounds = env_num("QUARRY_BENCH_ROUNDS", 5);
    let docs = env_num("QUARRY_BENCH_DOCS", 300);
    let delay = Duration::from_millis(env_num("QUARRY_BENCH_PROVIDER_MS", 50) as u64);
    let queries = test_queries(&scifact);

    // The provider: all-MiniLM-L6-v2 behind `/v1/embeddings`, `delay` away.
    let provider_data = tmp();
    let provider = spawn_serve(
        provider_data.path(),
        &["--addr", "127.0.0.1:0"],
        &[("QUARRY_EMBEDDER", "local")],
    );
    let proxy = latency_proxy(provider.url.clone(), delay);

    // The collection: the first `docs` SciFact documents, embedded through the provider.
    let data = tmp();
    write_tree(
        data.path(),
        &[(
            "quarry.toml",
            format!(
                "[embedders.remote]\nprovider = \"openai\"\nbase_url = \"{proxy}/v1\"\n\
                 model = \"all-MiniLM-L6-v2\"\ndimensions = 384\n\n\
                 [reindex]\ncanary_interval = \"off\"\n\n[query]\nembed_cache_entries = 0\n"
            )
            .as_bytes(),
        )],
    );
    let corpus: String = std::fs::read_to_string(scifact.join("corpus.jsonl"))
        .unwrap()
        .lines()
        .take(docs)
        .map(|l| format!("{l}\n"))
        .collect();
    let corpus_path = data.path().join("subset.jsonl");
    std::fs::write(&corpus_path, corpus).unwrap();
    let remote = [("QUARRY_EMBEDDER", "remote")];
    let out = run_env(
        data.path(),
        &["ingest", corpus_path.to_str().unwrap()],
        &remote,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&corpus_path).unwrap();

    let server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &remote);
    let client = Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !client
        .get(format!("{}/readyz", server.url))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the server was not ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (warm, _) = single_in(&client, &server.url, "default", "warm-up query about cells");
    assert!(!warm.is_empty(), "the collection answers");
    eprintln!(
        "batches with a remote provider {} ms away (all-MiniLM-L6-v2 in a second quarry on the same cores), {docs} SciFact documents:",
        delay.as_millis()
    );
    let before = RELAYED.load(std::sync::atomic::Ordering::Relaxed);
    batch_rounds(&client, &server.url, "default", &queries, rounds);
    let relayed = RELAYED.load(std::sync::atomic::Ordering::Relaxed) - before;
    eprintln!(
        "provider requests during the rounds: {relayed} ({} sequential queries and {rounds} batches)",
        rounds * BATCH
    );
    server.stop();
    provider.stop();
}

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

use crate::{Served, spawn_serve, tmp};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Instant;

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
    let t = Instant::now();
    let resp = client
        .post(format!("{url}/v1/collections/beir-scifact/query"))
        .json(&body(text))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());
    let answer: Value = resp.json().unwrap();
    (ranked(&answer), t.elapsed().as_secs_f64() * 1e3)
}

/// One batch over HTTP: the doc ids of each answer, and its latency in milliseconds.
fn batch(client: &Client, url: &str, texts: &[String]) -> (Vec<Vec<String>>, f64) {
    let queries: Vec<Value> = texts.iter().map(|t| body(t)).collect();
    let t = Instant::now();
    let resp = client
        .post(format!("{url}/v1/collections/beir-scifact/query/batch"))
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
    let (mut sequential, mut batched, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let texts: Vec<String> = (0..BATCH)
            .map(|i| queries[(round * BATCH + i) % queries.len()].clone())
            .collect();
        let run_sequential = || {
            let t = Instant::now();
            let ids: Vec<Vec<String>> = texts
                .iter()
                .map(|q| single(&client, &server.url, q).0)
                .collect();
            (ids, t.elapsed().as_secs_f64() * 1e3)
        };
        let ((one_by_one, seq_ms), (together, batch_ms)) = if round % 2 == 0 {
            let s = run_sequential();
            (s, batch(&client, &server.url, &texts))
        } else {
            let b = batch(&client, &server.url, &texts);
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
    server.stop();
    eprintln!(
        "batches of {BATCH} distinct SciFact test queries (cache off), {rounds} rounds, medians: 32 sequential queries {:.0} ms ({:.0} q/s), one batch {:.0} ms ({:.0} q/s); batch throughput / sequential: {:.2}x",
        percentile(&sequential, 50.0),
        BATCH as f64 * 1e3 / percentile(&sequential, 50.0),
        percentile(&batched, 50.0),
        BATCH as f64 * 1e3 / percentile(&batched, 50.0),
        percentile(&ratios, 50.0),
    );
}

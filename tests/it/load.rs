//! The load test (not in CI: run it by hand, in release mode, on a quiet machine):
//!
//! ```sh
//! cargo test --release --test it load:: -- --ignored --nocapture
//! ```
//!
//! A real `quarry serve` over a seeded collection. Phase 1, idle: 32 client threads query it for
//! `QUARRY_LOAD_IDLE_SECS` (30) seconds. Phase 2: 32 clients query it for `QUARRY_LOAD_SECS` (60)
//! seconds while a separate `quarry ingest` process adds `QUARRY_LOAD_NEW_DOCS` (1000) new
//! documents, 50 a generation. It asserts no failed query in either phase, and every new document
//! found by BM25 by a word only it has before the end of phase 2; it prints the latency
//! percentiles of both phases, from the same run. The embedder is the hashing one (the engine and
//! server are measured, not a model) unless `QUARRY_LOAD_EMBEDDER` names another (`local`).

use crate::follow::query;
use crate::{path_str, quarry, run_env, spawn_serve, tmp};
use reqwest::blocking::Client;
use std::time::{Duration, Instant};

const CLIENTS: usize = 32;
const SEED_DOCS: usize = 5000;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// A JSONL corpus of documents `from..to`: a word only document `i` has (`uq{i}z`) and 40 words of
/// a shared vocabulary of 2000.
fn corpus(path: &std::path::Path, from: usize, to: usize) {
    let mut out = String::new();
    for i in from..to {
        let mut state = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let words: Vec<String> = (0..40)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!("v{}", state % 2000)
            })
            .collect();
        let rec = serde_json::json!({"_id": format!("n{i}"), "title": format!("Note {i}"),
            "text": format!("uq{i}z {}", words.join(" "))});
        out.push_str(&rec.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// What the clients of one phase saw.
struct Phase {
    latencies: Vec<Duration>,
    failures: Vec<String>,
    seconds: f64,
}

impl Phase {
    /// The nearest-rank percentile of the latencies, in milliseconds.
    fn percentile(&self, p: usize) -> f64 {
        let mut ms: Vec<f64> = self
            .latencies
            .iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        quarry_core::stats::percentile(&ms, p as f64)
    }

    fn line(&self) -> String {
        format!(
            "{} queries in {:.0} s ({:.0} q/s), {} failed; p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.latencies.len(),
            self.seconds,
            self.latencies.len() as f64 / self.seconds,
            self.failures.len(),
            self.percentile(50),
            self.percentile(90),
            self.percentile(99),
            self.percentile(100),
        )
    }
}

/// `CLIENTS` threads query `url` until `deadline`, each cycling through the three modes and
/// queries of two vocabulary words.
fn clients(
    url: &str,
    deadline: Instant,
) -> Vec<std::thread::JoinHandle<(Vec<Duration>, Vec<String>)>> {
    (0..CLIENTS)
        .map(|c| {
            let url = url.to_owned();
            std::thread::spawn(move || {
                let client = Client::new();
                let modes = ["hybrid", "bm25", "vector"];
                let (mut latencies, mut failures) = (Vec::new(), Vec::new());
                let mut i = c;
                while Instant::now() < deadline {
                    let q = format!("v{} v{}", (i * 7) % 2000, (i * 13 + 5) % 2000);
                    let t = Instant::now();
                    match query(&client, &url, &q, modes[i % 3]) {
                        Ok(_) => latencies.push(t.elapsed()),
                        Err(e) => failures.push(e),
                    }
                    i += CLIENTS;
                }
                (latencies, failures)
            })
        })
        .collect()
}

fn join(
    handles: Vec<std::thread::JoinHandle<(Vec<Duration>, Vec<String>)>>,
    started: Instant,
) -> Phase {
    let mut phase = Phase {
        latencies: Vec::new(),
        failures: Vec::new(),
        seconds: 0.0,
    };
    for h in handles {
        let (l, f) = h.join().unwrap();
        phase.latencies.extend(l);
        phase.failures.extend(f);
    }
    phase.seconds = started.elapsed().as_secs_f64();
    phase
}

#[test]
#[ignore = "the load test: minutes, release mode; see DEVELOPERS.md"]
fn load_32_clients_while_a_cli_ingest_runs() {
    if cfg!(debug_assertions) {
        panic!(
            "measure in release mode: cargo test --release --test it load:: -- --ignored --nocapture"
        );
    }
    let idle_secs = env_or("QUARRY_LOAD_IDLE_SECS", 30);
    let load_secs = env_or("QUARRY_LOAD_SECS", 60);
    let new_docs = env_or("QUARRY_LOAD_NEW_DOCS", 1000) as usize;
    let embedder = std::env::var("QUARRY_LOAD_EMBEDDER").unwrap_or_else(|_| "hash".into());
    let env = [("QUARRY_EMBEDDER", embedder.as_str())];

    let data = tmp();
    let src = tmp();
    let (seed, more) = (src.path().join("seed.jsonl"), src.path().join("new.jsonl"));
    corpus(&seed, 0, SEED_DOCS);
    corpus(&more, SEED_DOCS, SEED_DOCS + new_docs);
    let out = run_env(
        data.path(),
        &["ingest", "--collection", "c", &path_str(&seed)],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &env);
    let url = server.url.clone();
    let client = Client::new();
    assert_eq!(query(&client, &url, "uq7z", "bm25").unwrap()[0], "n7");

    // Phase 1: idle.
    let started = Instant::now();
    let idle = join(
        clients(&url, started + Duration::from_secs(idle_secs)),
        started,
    );

    // Phase 2: the same clients while a CLI ingest runs in its own process.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(load_secs);
    let handles = clients(&url, deadline);
    let ingest = quarry()
        .arg("--data-dir")
        .arg(data.path())
        .args(["ingest", "--collection", "c", "--json", &path_str(&more)])
        .envs(env)
        .env("QUARRY_INGEST__BATCH_DOCS", "50")
        .output()
        .unwrap();
    let ingested = started.elapsed();
    eprintln!(
        "the CLI ingest of {new_docs} documents (50 a generation) ended {:.1} s into the {load_secs} s phase",
        ingested.as_secs_f64()
    );
    assert!(
        ingest.status.success(),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&ingest.stdout).unwrap();
    assert_eq!(summary["added"], new_docs, "{summary}");

    // Every new document is found by its own word before the end of the phase: one BM25 query
    // of 100 such words must answer exactly those 100 documents (no other document has them).
    let mut pending: Vec<usize> = (SEED_DOCS..SEED_DOCS + new_docs).collect();
    let all_found = loop {
        let mut still = Vec::new();
        for group in pending.chunks(100) {
            let words: Vec<String> = group.iter().map(|i| format!("uq{i}z")).collect();
            let mut want: Vec<String> = group.iter().map(|i| format!("n{i}")).collect();
            let resp = client
                .post(format!("{url}/v1/collections/c/query"))
                .json(
                    &serde_json::json!({"query": words.join(" "), "mode": "bm25",
                    "top_k": 100, "group_by": "document"}),
                )
                .send()
                .unwrap();
            assert!(resp.status().is_success(), "{}", resp.text().unwrap());
            let mut got = crate::doc_ids(&resp.json().unwrap());
            got.sort();
            want.sort();
            if got != want {
                still.extend(group.iter().filter(|i| !got.contains(&format!("n{i}"))));
                assert!(got.iter().all(|d| want.contains(d)), "{got:?}");
            }
        }
        pending = still;
        if pending.is_empty() {
            break started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{} new documents not found by the end of the phase, e.g. n{}",
            pending.len(),
            pending[0]
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        Instant::now() < deadline,
        "the new documents were found only after the phase ended ({all_found:?})"
    );
    let loaded = join(handles, started);
    let log = server.stop();

    eprintln!(
        "load test: {CLIENTS} clients, modes hybrid/bm25/vector in turn, top_k 3 by document, embedder {embedder}, {SEED_DOCS} seed documents"
    );
    eprintln!("idle:         {}", idle.line());
    eprintln!("under ingest: {}", loaded.line());
    eprintln!(
        "the CLI ingest of {new_docs} documents (50 a generation) took {:.1} s; all of them found {:.1} s into the {load_secs} s phase",
        ingested.as_secs_f64(),
        all_found.as_secs_f64()
    );
    eprintln!(
        "p99 under ingest / idle: {:.2}; p50: {:.2}",
        loaded.percentile(99) / idle.percentile(99),
        loaded.percentile(50) / idle.percentile(50)
    );
    assert!(
        idle.failures.is_empty() && loaded.failures.is_empty(),
        "failed queries: idle {:?}, under ingest {:?}",
        idle.failures.iter().take(5).collect::<Vec<_>>(),
        loaded.failures.iter().take(5).collect::<Vec<_>>()
    );
    assert!(!idle.latencies.is_empty() && !loaded.latencies.is_empty());
    assert!(!log.contains("panicked"), "{log}");
}

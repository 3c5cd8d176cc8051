//! Measuring the built collection through a real `quarry serve`: a first start (not timed) and a
//! stop, then a timed restart (from spawning the process to its first answered query); recall@10
//! of `vector` queries against the exact scan, per permitted fraction; latency cells of `bm25`,
//! `vector` and `hybrid` queries (`group_by` chunk, `top_k` 10) per permitted fraction with 1 and
//! 2 client threads; then the server's memory and its model calls.
//!
//! Queries carry their own vector (`vector` and `hybrid`), so the server embeds nothing. Each cell
//! starts with a few untimed warm-up queries of its own (not among the measured ones).

use super::build::{COLLECTION, bar};
use super::corpus::{Corpus, doc_index, fraction};
use super::exact::{K, recall};
use super::load::{Caller, client, run};
use super::report::Cell;
use super::server::{Memory, Server};
use super::setup::Reader;
use std::path::Path;
use std::time::Instant;

/// The query modes measured, in table order.
pub(super) const MODES: [&str; 3] = ["bm25", "vector", "hybrid"];
/// Client threads of the latency cells.
pub(super) const THREADS: [usize; 2] = [1, 2];
/// Untimed queries before each cell (queries beyond the measured ones).
pub(super) const WARMUP: usize = 8;

/// What to measure.
pub(super) struct Plan<'a> {
    pub(super) exe: &'a Path,
    pub(super) data_dir: &'a Path,
    pub(super) config: &'a Path,
    /// Queries `0..queries` are measured, the [`WARMUP`] after them warm up.
    pub(super) corpus: &'a Corpus,
    /// One reader per access level.
    pub(super) readers: &'a [Reader],
    pub(super) queries: usize,
    pub(super) latency_queries: usize,
    /// The exact top [`K`] of each query at each access level.
    pub(super) truth: &'a [Vec<Vec<u32>>],
}

/// What the server measured.
pub(super) struct Measured {
    pub(super) restart_seconds: f64,
    pub(super) memory: Memory,
    pub(super) model_calls: u64,
    /// Recall@10 of vector search per access level.
    pub(super) recall: Vec<f64>,
    pub(super) cells: Vec<Cell>,
}

/// The JSON body of query `q` in `mode`.
fn body(corpus: &Corpus, mode: &str, q: usize) -> Vec<u8> {
    let mut b = serde_json::json!({"mode": mode, "group_by": "chunk", "top_k": K});
    if mode != "vector" {
        b["query"] = corpus.query_texts[q].as_str().into();
    }
    if mode != "bm25" {
        b["vector"] = corpus.query_vectors[q * corpus.dims..(q + 1) * corpus.dims].into();
    }
    serde_json::to_vec(&b).unwrap_or_default()
}

fn sorted(ms: &[f64]) -> Vec<f64> {
    let mut s = ms.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// Runs the whole measurement on a server of the plan's data directory.
pub(super) fn measure(plan: &Plan<'_>) -> anyhow::Result<Measured> {
    let total = plan.queries + WARMUP;
    let bodies: Vec<Vec<Vec<u8>>> = MODES
        .iter()
        .map(|m| (0..total).map(|q| body(plan.corpus, m, q)).collect())
        .collect();
    let vector_bodies = &bodies[1];
    let http = client()?;

    eprintln!("bench: first start of the server (not timed)…");
    let mut server = Server::start(plan.exe, plan.data_dir, plan.config)?;
    let query_url = format!("{}/v1/collections/{COLLECTION}/query", server.url);
    server.wait_for_answer(&http, &query_url, &plan.readers[0].key, &vector_bodies[0])?;
    server.stop()?;

    eprintln!("bench: restart…");
    let started = Instant::now();
    let mut server = Server::start(plan.exe, plan.data_dir, plan.config)?;
    let query_url = format!("{}/v1/collections/{COLLECTION}/query", server.url);
    server.wait_for_answer(&http, &query_url, &plan.readers[0].key, &vector_bodies[0])?;
    let restart_seconds = started.elapsed().as_secs_f64();

    eprintln!("bench: recall@{K} of vector search…");
    let b = bar((plan.readers.len() * plan.queries) as u64, "recall");
    let mut recalls = Vec::new();
    for (level, reader) in plan.readers.iter().enumerate() {
        let caller = Caller {
            query_url: &query_url,
            key: &reader.key,
        };
        let answered = run(&caller, &vector_bodies[..plan.queries], 1, true)?;
        let mut sum = 0.0;
        for (q, hits) in answered.hits.iter().enumerate() {
            let served: Vec<usize> = hits.iter().filter_map(|h| doc_index(h)).collect();
            sum += recall(&plan.truth[q][level], &served);
        }
        recalls.push(sum / plan.queries as f64);
        b.inc(plan.queries as u64);
    }
    b.finish_and_clear();

    eprintln!("bench: latency…");
    let b = bar(
        (MODES.len() * plan.readers.len() * THREADS.len()) as u64,
        "cells",
    );
    let mut cells = Vec::new();
    for (m, mode) in MODES.iter().enumerate() {
        for (level, reader) in plan.readers.iter().enumerate() {
            let caller = Caller {
                query_url: &query_url,
                key: &reader.key,
            };
            for threads in THREADS {
                run(&caller, &bodies[m][plan.queries..], threads, false)?;
                let timed = run(&caller, &bodies[m][..plan.latency_queries], threads, false)?;
                let ms = sorted(&timed.ms);
                cells.push(Cell {
                    mode: (*mode).to_owned(),
                    permitted_fraction: fraction(level),
                    threads,
                    queries: ms.len(),
                    p50_ms: quarry_core::stats::percentile(&ms, 50.0),
                    p99_ms: quarry_core::stats::percentile(&ms, 99.0),
                    qps: ms.len() as f64 / timed.seconds.max(1e-9),
                });
                b.inc(1);
            }
        }
    }
    b.finish_and_clear();

    let memory = server.memory()?;
    let model_calls = server.counter(&http, "quarry_embedding_calls_total")? as u64;
    server.stop()?;
    Ok(Measured {
        restart_seconds,
        memory,
        model_calls,
        recall: recalls,
        cells,
    })
}

//! Hybrid (BM25 + vector, fused) retrieval latency on SciFact, measured in process, excluding the
//! embedding of the query.
//!
//! The dataset is BEIR SciFact in `$QUARRY_DATASETS/scifact` (DEVELOPERS.md, "Datasets"): `corpus.jsonl`,
//! `queries.jsonl`, `qrels/test.tsv`, and the precomputed all-MiniLM-L6-v2 vectors
//! `minilm-corpus.parquet` and `minilm-queries.parquet` (columns `id: string` and
//! `vector: fixed_size_list<float32>[384]`). When the variable is unset or a file is missing the
//! benchmark says so and measures nothing. No model files are needed.
//!
//! Setup (once per process, not timed by criterion; its steps are timed and printed):
//!
//! * an [`Engine`] in a temporary directory whose embedder `ref` is a stub with the reference
//!   spec of all-MiniLM-L6-v2 (its `embed` fails, so nothing is ever embedded);
//! * one ingest of `corpus.jsonl` without embedding, chunked at 4096 tokens so that every document
//!   is one chunk;
//! * the corpus vectors loaded with [`Engine::put_vectors`] (each document's single chunk gets
//!   the vector of its id), then [`Engine::flush`] and one [`Searcher`];
//! * the query vectors of the 300 test queries, L2-normalised as the engine normalises an
//!   embedded query.
//!
//! What is measured, one [`Searcher::search_with_vector`] per iteration, cycling through the 300
//! test queries (so criterion's figures are per query):
//!
//! * `hybrid/top10_document`, `hybrid/top100_document` (the eval setting): `mode=hybrid`
//!   (the default fusion, `query.fusion`), `group_by=document`;
//! * `bm25/top10_document` (the same-run baseline) and `vector/top10_document`.
//!
//! Besides criterion's statistics the benchmark prints on stderr, once per benchmark the first
//! time criterion runs it: p50/p95/p99 of each query timed individually with [`Instant`] over a few
//! passes (targets for hybrid: p50 ≤ 2 ms, p99 ≤ 10 ms), the same percentiles of each query's best
//! time over the passes, and the mean time the thread spent on a CPU per query (from
//! `/proc/thread-self/schedstat`): both stay meaningful on a machine busy with other work. And
//! once, before the benchmarks: nDCG@10 of each setting against the test qrels (a sanity check of
//! the fused results), the vector index mode (exact scan or HNSW), the recall
//! of the HNSW results against an exact scan with the time of each, and the hybrid latencies again
//! through a second engine on the same directory whose `vector.exact_threshold` makes it scan every
//! vector instead of the graph. These extra passes only run with `cargo bench`, not when
//! `cargo test --benches` runs each benchmark once as a smoke test.
//!
//! **The default chunking.** The corpus above is one chunk per document, as the reference vectors
//! are. To measure a collection chunked as `quarry` chunks by default (about 7 chunks per
//! document, 37,366 at 64 tokens), point `QUARRY_BENCH_DATA_DIR` at a data dir where
//! `quarry eval --dataset $QUARRY_DATASETS/scifact` has ingested and embedded the corpus
//! (collection `beir-scifact`). The same four settings then also run over that collection, as
//! the group `chunked` (`chunked/hybrid_top10_document`, …), with the same reference query
//! vectors, after nDCG@10 lines (hybrid at `top_k` 10 and 100, BM25 at 100, vector at 10 and
//! 100). The data dir's documents are not changed, but a BM25 index of an older layout is rebuilt
//! on open, as `quarry` itself does; no other `quarry` process may hold the data dir.
//!
//! Run it (release build):
//!
//! ```text
//! cargo bench --bench hybrid                 # everything
//! cargo bench --bench hybrid -- hybrid/      # only the hybrid settings
//! QUARRY_BENCH_DATA_DIR=./quarry-data cargo bench --bench hybrid -- chunked/
//! ```

mod common;

use common::{
    COLLECTION, DIMS, Dataset, Loaded, measuring, queries_of, report_latency, report_ndcg, search,
    summary_ms, timed,
};
use criterion::Criterion;
use quarry_core::{ContentHash, Mode};
use quarry_index::vectors::{VectorIndex, VectorParams};
use quarry_index::{Engine, EngineOptions, Searcher};
use std::cell::OnceCell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// The settings measured: criterion group, function, `top_k`, mode.
const SETTINGS: [(&str, &str, usize, Mode); 4] = [
    ("hybrid", "top10_document", 10, Mode::Hybrid),
    ("hybrid", "top100_document", 100, Mode::Hybrid),
    ("bm25", "top10_document", 10, Mode::Bm25),
    ("vector", "top10_document", 10, Mode::Vector),
];

/// Collection that `quarry eval --dataset …/scifact` ingests into.
const CHUNKED_COLLECTION: &str = "beir-scifact";

/// A searcher over the `beir-scifact` collection of the data dir named by
/// `QUARRY_BENCH_DATA_DIR` (see the module doc), or `None` when the variable is unset. Queries
/// come with their vectors, so the embedder is never called; none is configured.
fn open_chunked() -> Option<(Engine, Searcher)> {
    let dir = PathBuf::from(std::env::var_os("QUARRY_BENCH_DATA_DIR")?);
    assert!(
        dir.join("catalog.sqlite3").is_file(),
        "QUARRY_BENCH_DATA_DIR: {} is not a quarry data dir (no catalog.sqlite3); run `quarry eval \
         --data-dir {} --dataset $QUARRY_DATASETS/scifact` first",
        dir.display(),
        dir.display()
    );
    let engine = Engine::open(&dir, EngineOptions::default())
        .unwrap_or_else(|e| panic!("QUARRY_BENCH_DATA_DIR: cannot open {}: {e}", dir.display()));
    let searcher = engine.searcher(CHUNKED_COLLECTION).unwrap_or_else(|e| {
        panic!(
            "QUARRY_BENCH_DATA_DIR: no collection `{CHUNKED_COLLECTION}` in {} ({e}); run \
             `quarry eval --data-dir {} --dataset $QUARRY_DATASETS/scifact` first",
            dir.display(),
            dir.display()
        )
    });
    assert!(
        searcher.embedding_version().is_some(),
        "QUARRY_BENCH_DATA_DIR: collection `{CHUNKED_COLLECTION}` in {} has no vectors",
        dir.display()
    );
    eprintln!(
        "hybrid bench: chunked collection `{CHUNKED_COLLECTION}` of {}: {} chunks, embedding \
         version {}",
        dir.display(),
        searcher.num_chunks(),
        searcher.embedding_version().unwrap_or("none")
    );
    Some((engine, searcher))
}

/// nDCG@10 of every setting against the test qrels, checking that no answer is degraded.
fn report_quality(loaded: &Loaded, data: &Dataset) {
    let settings = [
        (
            "hybrid/top100_document",
            100,
            Mode::Hybrid,
            &loaded.searcher,
        ),
        ("hybrid/top10_document", 10, Mode::Hybrid, &loaded.searcher),
        ("bm25/top100_document", 100, Mode::Bm25, &loaded.searcher),
        (
            "vector/top100_document",
            100,
            Mode::Vector,
            &loaded.searcher,
        ),
        (
            "hybrid/top100_document (exact scan)",
            100,
            Mode::Hybrid,
            &loaded.exact.1,
        ),
    ];
    for (name, top_k, mode, searcher) in settings {
        report_ndcg(name, searcher, data, top_k, mode);
    }
}

/// The folder of the loaded collection's vector index, if it has an embedding version.
fn vector_dir(loaded: &Loaded) -> Option<std::path::PathBuf> {
    let version = loaded.searcher.embedding_version()?;
    Some(
        loaded
            .engine
            .dir()
            .join("collections")
            .join(COLLECTION)
            .join("vectors")
            .join(version),
    )
}

/// The vector index mode, and the recall of HNSW against an exact scan: of the graph itself
/// (reopened from the engine's dump) at the depths the searcher asks for, and of the searcher's
/// `vector/top10_document` answers.
fn report_vector_index(loaded: &Loaded, data: &Dataset) {
    let Some(dir) = vector_dir(loaded) else {
        eprintln!("vector index: the collection has no embedding version");
        return;
    };
    let params = loaded.engine.options().vector;
    let index = match VectorIndex::open(&dir, DIMS, params) {
        Ok(index) => index,
        Err(e) => {
            eprintln!(
                "vector index: cannot reopen {} ({e}); recall skipped",
                dir.display()
            );
            return;
        }
    };
    let snapshot = index.snapshot();
    let mode = if snapshot.len() < params.exact_threshold {
        "exact scan"
    } else {
        "HNSW"
    };
    eprintln!(
        "vector index: {} live vectors, exact_threshold {}, so {mode} is used (m {}, \
         ef_construction {}, ef_search {})",
        snapshot.len(),
        params.exact_threshold,
        params.m,
        params.ef_construction,
        params.ef_search
    );
    // The depths the searcher asks the vector index for: top_k=10 and 100 with group_by=document.
    for k in [10, 100, 300] {
        let mut hits = 0usize;
        let (mut exact_wall, mut exact_cpu) = (Vec::new(), Vec::new());
        let (mut graph_wall, mut graph_cpu) = (Vec::new(), Vec::new());
        for t in &data.queries {
            let (exact, w, c) = timed(|| snapshot.exact_search(&t.vector, k).expect("exact scan"));
            exact_wall.push(w);
            exact_cpu.extend(c);
            let exact: HashSet<ContentHash> = exact.into_iter().map(|(h, _)| h).collect();
            let (graph, w, c) = timed(|| snapshot.search(&t.vector, k).expect("vector search"));
            graph_wall.push(w);
            graph_cpu.extend(c);
            hits += graph.iter().filter(|(h, _)| exact.contains(h)).count();
        }
        let n = data.queries.len();
        let mean_ms = |xs: &[Duration]| {
            if xs.is_empty() {
                f64::NAN
            } else {
                xs.iter().sum::<Duration>().as_secs_f64() * 1e3 / xs.len() as f64
            }
        };
        eprintln!(
            "vector index: recall@{k} of the graph vs exact {:.4}; mean per query: graph {:.3} ms \
             wall, {:.3} ms on-CPU; exact scan {:.3} ms wall, {:.3} ms on-CPU",
            hits as f64 / (n * k) as f64,
            mean_ms(&graph_wall),
            mean_ms(&graph_cpu),
            mean_ms(&exact_wall),
            mean_ms(&exact_cpu),
        );
    }
    // The searcher's own vector answers against the exact top 10 documents.
    let mut hits = 0usize;
    for (q, t) in queries_of(data, 10, Mode::Vector).iter().zip(&data.queries) {
        let exact: HashSet<&str> = snapshot
            .exact_search(&t.vector, 10)
            .expect("exact scan")
            .iter()
            .filter_map(|(h, _)| loaded.doc_of.get(h).map(String::as_str))
            .collect();
        hits += loaded
            .search(q, &t.vector)
            .results
            .iter()
            .filter(|h| exact.contains(h.doc_id.as_str()))
            .count();
    }
    eprintln!(
        "vector index: recall@10 of searcher vector/top10_document vs exact {:.4}",
        hits as f64 / (data.queries.len() * 10) as f64
    );
}

/// ACL-filtered vector search on the reference vectors: for permitted fractions 100%, 10%, 1% and
/// 0.1% of the chunks, recall@10 against an exact scan of the permitted set and latency, with the
/// default plan (exact scan of few permitted vectors, filtered graph traversal otherwise) and with
/// the graph forced at every fraction.
fn report_filtered(loaded: &Loaded, data: &Dataset) {
    let Some(dir) = vector_dir(loaded) else {
        return;
    };
    let defaults = loaded.engine.options().vector;
    let forced = VectorParams {
        exact_threshold: 0,
        filter_exact_fraction: 0.0,
        ..defaults
    };
    let mut keys: Vec<u64> = loaded
        .doc_of
        .keys()
        .map(quarry_index::bm25::chunk_key)
        .collect();
    keys.sort_unstable();
    eprintln!(
        "acl filter: {} vectors, {} queries, k = 10",
        keys.len(),
        data.queries.len()
    );
    for (label, params) in [("default plan", defaults), ("graph forced", forced)] {
        let index = match VectorIndex::open(&dir, DIMS, params) {
            Ok(index) => index,
            Err(e) => {
                eprintln!("acl filter: cannot reopen {} ({e})", dir.display());
                return;
            }
        };
        let snapshot = index.snapshot();
        for fraction in [1.0, 0.1, 0.01, 0.001] {
            // a fixed pseudo-random subset: keys are hash prefixes, so `key % 1000` is uniform
            let permitted: Vec<u64> = keys
                .iter()
                .copied()
                .filter(|k| (k % 1000) < (fraction * 1000.0) as u64)
                .collect();
            let allowed: HashSet<u64> = permitted.iter().copied().collect();
            let (mut hits, mut want_total) = (0usize, 0usize);
            let mut wall = Vec::new();
            let mut plan = None;
            for t in &data.queries {
                let want: HashSet<ContentHash> = snapshot
                    .exact_search(&t.vector, snapshot.len())
                    .expect("exact scan")
                    .into_iter()
                    .filter(|(h, _)| allowed.contains(&quarry_index::bm25::chunk_key(h)))
                    .take(10)
                    .map(|(h, _)| h)
                    .collect();
                let ((got, p), w, _) = timed(|| {
                    snapshot
                        .search_permitted(&t.vector, 10, &permitted)
                        .expect("filtered search")
                });
                plan = Some(p);
                wall.push(w);
                hits += got.iter().filter(|(h, _)| want.contains(h)).count();
                want_total += want.len();
            }
            eprintln!(
                "acl filter [{label}]: permitted {:>5.1}% ({} vectors), plan {:?}: recall@10 {:.4}, latency {}",
                fraction * 100.0,
                permitted.len(),
                plan.expect("at least one query"),
                hits as f64 / want_total.max(1) as f64,
                summary_ms(wall)
            );
        }
    }
}

/// The loaded engine, set up on first use; when measuring, the quality and vector index reports
/// are printed right after.
fn loaded<'a>(cell: &'a OnceCell<Loaded>, data: &Dataset) -> &'a Loaded {
    cell.get_or_init(|| {
        let loaded = Loaded::new(data);
        if measuring() {
            report_quality(&loaded, data);
            report_vector_index(&loaded, data);
            report_filtered(&loaded, data);
            // The same hybrid queries with an exact vector scan instead of the graph.
            for (top_k, function) in [(10, "top10_document"), (100, "top100_document")] {
                report_latency(
                    &format!("hybrid/{function} (exact scan)"),
                    &loaded.exact.1,
                    data,
                    &queries_of(data, top_k, Mode::Hybrid),
                );
            }
        }
        loaded
    })
}

/// The chunked collection, opened on first use; when measuring, its quality is printed right
/// after.
fn chunked<'a>(cell: &'a OnceCell<(Engine, Searcher)>, data: &Dataset) -> &'a Searcher {
    &cell
        .get_or_init(|| {
            let opened = open_chunked().expect("QUARRY_BENCH_DATA_DIR is set");
            if measuring() {
                for (top_k, mode, name) in [
                    (100, Mode::Hybrid, "chunked/hybrid_top100_document"),
                    (10, Mode::Hybrid, "chunked/hybrid_top10_document"),
                    (100, Mode::Bm25, "chunked/bm25_top100_document"),
                    (100, Mode::Vector, "chunked/vector_top100_document"),
                    (10, Mode::Vector, "chunked/vector_top10_document"),
                ] {
                    report_ndcg(name, &opened.1, data, top_k, mode);
                }
            }
            opened
        })
        .1
}

/// One criterion benchmark per setting of [`SETTINGS`], in group `group` (`None`: the setting's
/// own group), on the searcher `searcher` returns (set up on first use).
fn bench_settings<'a>(
    c: &mut Criterion,
    data: &Dataset,
    group: Option<&str>,
    searcher: impl Fn() -> &'a Searcher,
) {
    for (group_name, function, top_k, mode) in SETTINGS {
        let (group_name, function) = match group {
            Some(g) => (g.to_owned(), format!("{group_name}_{function}")),
            None => (group_name.to_owned(), function.to_owned()),
        };
        let name = format!("{group_name}/{function}");
        let queries = queries_of(data, top_k, mode);
        let mut group = c.benchmark_group(group_name);
        group
            .sample_size(50)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        let mut reported = false;
        group.bench_function(function, |b| {
            let searcher = searcher();
            if !reported && measuring() {
                report_latency(&name, searcher, data, &queries);
            }
            reported = true;
            let mut next = queries.iter().zip(&data.queries).cycle();
            b.iter(|| {
                let (q, t) = next.next().expect("cycle over a non-empty list");
                search(searcher, q, &t.vector)
            });
        });
        group.finish();
    }
}

fn main() {
    // A hand-written `main` instead of `criterion_group!`, so that the benchmarks share one
    // loaded engine, set up only if a benchmark that needs it passes the filter.
    let mut c = Criterion::default().configure_from_args();
    if let Some(data) = Dataset::locate() {
        let cell = OnceCell::new();
        bench_settings(&mut c, &data, None, || &loaded(&cell, &data).searcher);
        if std::env::var_os("QUARRY_BENCH_DATA_DIR").is_some() {
            let cell = OnceCell::new();
            bench_settings(&mut c, &data, Some("chunked"), || chunked(&cell, &data));
        }
    }
    c.final_summary();
}

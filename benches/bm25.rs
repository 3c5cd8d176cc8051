//! Ingest throughput and BM25 query latency on SciFact, measured in process.
//!
//! The dataset is BEIR SciFact in `$QUARRY_DATASETS/scifact` (`corpus.jsonl`, `queries.jsonl`,
//! `qrels/test.tsv`; DEVELOPERS.md, "Datasets", says where to get it). When the variable is unset or
//! the folder is missing the benchmark says so and measures nothing.
//!
//! What is measured:
//!
//! * `ingest/fresh`: per iteration, a fresh [`Engine`] in a new temporary directory and one
//!   [`quarry_index::ingest`] of `corpus.jsonl` (JSON parsing, hashing, chunking, the SQLite catalog
//!   and the tantivy BM25 index, every commit included). Criterion reports bytes of corpus per second.
//!   Removing the temporary directory afterwards is not timed.
//! * `ingest/reingest_unchanged`: the same ingest again on an engine that already holds the corpus, so
//!   every document is found unchanged and nothing is written.
//! * `query/bm25_top10_chunk` and `query/bm25_top100_document`: one [`Searcher::search`] per
//!   iteration, cycling through the 300 SciFact test queries, with `top_k=10, group_by=chunk` and
//!   `top_k=100, group_by=document`, as an admin (no ACL filter, the index's own statistics).
//! * `query/..._reader`: the same as a reader who may read every document: the ACL filter and
//!   the BM25 statistics of the permitted chunks (a bitset of them, each term's postings counted
//!   against it) are the difference.
//!
//! Criterion's own statistics are means over batches. To make the figures easy to quote, the
//! benchmark also times things itself and prints them on stderr, once per benchmark the first time
//! criterion runs it (so a filter such as `-- query` skips the others): ingest docs/s and MB/s from
//! the median of a few fresh ingests, the median reingest time, and p50/p95/p99 of each query timed
//! individually over several passes (the target is p50 ≤ 1 ms in process). These extra passes only
//! run with `cargo bench`, not when `cargo test --benches` runs each benchmark once as a smoke test.
//!
//! Run it (release build, about two minutes once built):
//!
//! ```text
//! cargo bench --bench bm25                 # everything
//! cargo bench --bench bm25 -- query        # only the query latencies
//! ```
//!
//! Temporary directories are created under `$TMPDIR` (or `/tmp`); ingest timings include SQLite and
//! tantivy writing there, so they depend on that file system.

use criterion::{Criterion, SamplingMode, Throughput};
use quarry_core::stats::percentile;
use quarry_core::{GroupBy, Mode, Principal, QueryOptions};
use quarry_index::{Engine, EngineOptions, IngestOptions, IngestSummary, NoProgress, Searcher};
use std::cell::OnceCell;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Fresh ingests timed for the printed docs/s and MB/s (the median is printed).
const INGEST_RUNS: usize = 5;
/// Reingests of the unchanged corpus timed for the printed median.
const REINGEST_RUNS: usize = 10;
/// Passes over the test queries for the printed percentiles (after one untimed warm-up pass).
const QUERY_PASSES: usize = 5;

/// The SciFact files.
struct Dataset {
    corpus: PathBuf,
    corpus_bytes: u64,
    /// Texts of the distinct test queries, in qrels order.
    queries: Vec<String>,
}

impl Dataset {
    /// The dataset, or `None` (after saying why) when its folder is missing.
    fn locate() -> Option<Dataset> {
        let Some(root) = std::env::var_os("QUARRY_DATASETS") else {
            eprintln!(
                "bm25 bench: QUARRY_DATASETS is not set; nothing to measure. Set it to the folder \
                 that holds BEIR SciFact as scifact/ (see DEVELOPERS.md, \"Datasets\")."
            );
            return None;
        };
        let dir = PathBuf::from(root).join("scifact");
        if !dir.is_dir() {
            eprintln!(
                "bm25 bench: dataset folder {} is missing; nothing to measure. Put the BEIR SciFact \
                 files there (corpus.jsonl, queries.jsonl, qrels/test.tsv) to run this benchmark.",
                dir.display()
            );
            return None;
        }
        let corpus = dir.join("corpus.jsonl");
        let corpus_bytes = std::fs::metadata(&corpus)
            .map(|m| m.len())
            .expect("stat scifact corpus.jsonl");
        let queries = test_queries(&dir);
        assert!(
            !queries.is_empty(),
            "no test queries found in {}",
            dir.display()
        );
        Some(Dataset {
            corpus,
            corpus_bytes,
            queries,
        })
    }
}

/// The texts of the judged queries of `qrels/test.tsv`, in id order.
fn test_queries(dir: &Path) -> Vec<String> {
    quarry_index::eval::read_beir_cases(dir, "test")
        .expect("read SciFact's test queries and judgments")
        .into_iter()
        .map(|c| c.text)
        .collect()
}

/// An engine holding the whole corpus, in its own temporary directory.
struct Ingested {
    engine: Engine,
    _dir: TempDir,
}

fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("quarry-bench-")
        .tempdir()
        .expect("create a temporary directory")
}

fn open_engine(dir: &TempDir) -> Engine {
    Engine::open(dir.path(), EngineOptions::default()).expect("open engine")
}

fn ingest(engine: &Engine, corpus: &Path) -> IngestSummary {
    quarry_index::ingest(
        engine,
        &[corpus.to_path_buf()],
        &IngestOptions::default(),
        &NoProgress,
    )
    .expect("ingest the corpus")
}

impl Ingested {
    fn new(data: &Dataset) -> Ingested {
        let dir = temp_dir();
        let engine = open_engine(&dir);
        let summary = ingest(&engine, &data.corpus);
        assert!(summary.added > 0, "ingest added no documents: {summary:?}");
        Ingested { engine, _dir: dir }
    }

    fn searcher(&self) -> Searcher {
        self.engine
            .searcher("default")
            .expect("searcher of the default collection")
    }
}

/// True when this run measures (`cargo bench`), false for the one-shot smoke test of
/// `cargo test --benches` or for `--list`: the extra timing passes run only when measuring.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Nearest-rank percentile ([`percentile`]) of sorted durations, in microseconds.
fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    let us: Vec<f64> = sorted.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    percentile(&us, p)
}

/// Times fresh ingests itself and prints docs/s and MB/s of the median run.
fn report_ingest(data: &Dataset) {
    let mut times = Vec::with_capacity(INGEST_RUNS);
    let mut summary = IngestSummary::default();
    for _ in 0..INGEST_RUNS {
        let dir = temp_dir();
        let started = Instant::now();
        let engine = open_engine(&dir);
        summary = ingest(&engine, &data.corpus);
        times.push(started.elapsed());
    }
    let t = median(times).as_secs_f64();
    let docs = summary.added + summary.updated;
    let skipped: u64 = summary.skipped.values().sum();
    eprintln!(
        "ingest/fresh: median of {INGEST_RUNS}: {:.3} s, {:.0} docs/s, {:.2} MB/s ({:.2} MiB/s); \
         {docs} docs, {} chunks, {skipped} skipped, {} bytes",
        t,
        docs as f64 / t,
        data.corpus_bytes as f64 / t / 1e6,
        data.corpus_bytes as f64 / t / (1024.0 * 1024.0),
        summary.chunks,
        data.corpus_bytes,
    );
}

/// Times reingests of the unchanged corpus itself and prints the median.
fn report_reingest(data: &Dataset, ingested: &Ingested) {
    let times: Vec<Duration> = (0..REINGEST_RUNS)
        .map(|_| {
            let started = Instant::now();
            black_box(ingest(&ingested.engine, &data.corpus));
            started.elapsed()
        })
        .collect();
    let t = median(times).as_secs_f64();
    eprintln!(
        "ingest/reingest_unchanged: median of {REINGEST_RUNS}: {:.1} ms, {:.2} MB/s",
        t * 1e3,
        data.corpus_bytes as f64 / t / 1e6
    );
}

/// Times every query of `caller` individually over several passes and prints p50/p95/p99.
fn report_latency(name: &str, searcher: &Searcher, queries: &[QueryOptions], caller: &Principal) {
    for q in queries {
        black_box(searcher.search(q, caller).expect("search"));
    }
    let mut times = Vec::with_capacity(queries.len() * QUERY_PASSES);
    for _ in 0..QUERY_PASSES {
        for q in queries {
            let started = Instant::now();
            let response = searcher.search(q, caller).expect("search");
            times.push(started.elapsed());
            black_box(response);
        }
    }
    times.sort();
    let mean_us = times.iter().sum::<Duration>().as_secs_f64() * 1e6 / times.len() as f64;
    eprintln!(
        "query/{name}: {} queries x {QUERY_PASSES} passes: p50 {:.0} µs, p95 {:.0} µs, p99 {:.0} µs, \
         max {:.0} µs, mean {:.0} µs",
        queries.len(),
        percentile_us(&times, 50.0),
        percentile_us(&times, 95.0),
        percentile_us(&times, 99.0),
        percentile_us(&times, 100.0),
        mean_us,
    );
}

fn bench_ingest(c: &mut Criterion, data: &Dataset, ingested: &OnceCell<Ingested>) {
    let mut group = c.benchmark_group("ingest");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(25))
        .throughput(Throughput::Bytes(data.corpus_bytes));

    let mut reported = false;
    group.bench_function("fresh", |b| {
        if !reported && measuring() {
            report_ingest(data);
        }
        reported = true;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = temp_dir();
                let started = Instant::now();
                let engine = open_engine(&dir);
                black_box(ingest(&engine, &data.corpus));
                total += started.elapsed();
                drop(engine);
                drop(dir);
            }
            total
        });
    });

    let mut reported = false;
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("reingest_unchanged", |b| {
        let ingested = ingested.get_or_init(|| Ingested::new(data));
        if !reported {
            let again = ingest(&ingested.engine, &data.corpus);
            assert_eq!(
                (again.added, again.updated),
                (0, 0),
                "reingest changed documents: {again:?}"
            );
            if measuring() {
                report_reingest(data, ingested);
            }
        }
        reported = true;
        b.iter(|| ingest(&ingested.engine, &data.corpus));
    });
    group.finish();
}

fn bench_query(c: &mut Criterion, data: &Dataset, ingested: &OnceCell<Ingested>) {
    let admin = Principal::local_admin();
    // A reader who may read every document (the default ACL is public): its ACL filter admits
    // every chunk, the most work for the statistics of its permitted chunks.
    let reader = Principal::new("erin", vec![], quarry_core::Role::Reader);
    let variants = [
        ("bm25_top10_chunk", 10, GroupBy::Chunk, &admin),
        ("bm25_top100_document", 100, GroupBy::Document, &admin),
        ("bm25_top10_chunk_reader", 10, GroupBy::Chunk, &reader),
        (
            "bm25_top100_document_reader",
            100,
            GroupBy::Document,
            &reader,
        ),
    ];
    let mut group = c.benchmark_group("query");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (name, top_k, group_by, caller) in variants {
        let queries: Vec<QueryOptions> = data
            .queries
            .iter()
            .map(|text| {
                QueryOptions::new(text.as_str(), top_k, Mode::Bm25, group_by).expect("valid query")
            })
            .collect();
        let mut reported = false;
        group.bench_function(name, |b| {
            let searcher = ingested.get_or_init(|| Ingested::new(data)).searcher();
            if !reported && measuring() {
                report_latency(name, &searcher, &queries, caller);
            }
            reported = true;
            let mut next = queries.iter().cycle();
            b.iter(|| {
                let q = next.next().expect("cycle over a non-empty list");
                searcher.search(q, caller).expect("search")
            });
        });
    }
    group.finish();
}

fn main() {
    // A hand-written `main` instead of `criterion_group!`, so that the benchmarks share one
    // ingested engine, built only if a benchmark that needs it passes the filter.
    let mut c = Criterion::default().configure_from_args();
    if let Some(data) = Dataset::locate() {
        eprintln!(
            "bm25 bench: {} ({} bytes), {} test queries",
            data.corpus.display(),
            data.corpus_bytes,
            data.queries.len()
        );
        let ingested = OnceCell::new();
        bench_ingest(&mut c, &data, &ingested);
        bench_query(&mut c, &data, &ingested);
    }
    c.final_summary();
}

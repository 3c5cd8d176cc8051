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
//!   (RRF fusion), `group_by=document`;
//! * `bm25/top10_document` (the same-run baseline) and `vector/top10_document`.
//!
//! Besides criterion's statistics the benchmark prints on stderr, once per benchmark the first
//! time criterion runs it: p50/p95/p99 of each query timed individually with [`Instant`] over a few
//! passes (targets for hybrid: p50 ≤ 2 ms, p99 ≤ 10 ms), the same percentiles of each query's best
//! time over the passes, and the mean time the thread spent on a CPU per query (from
//! `/proc/thread-self/schedstat`): both stay meaningful on a machine busy with other work. And
//! once, before the benchmarks: nDCG@10 of each setting against the test qrels (a sanity check of
//! the fused results; about 0.71 with RRF), the vector index mode (exact scan or HNSW), the recall
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

use criterion::Criterion;
use quarry_core::metrics::{Judgments, ndcg_at_k};
use quarry_core::stats::percentile;
use quarry_core::{
    ChunkOptions, ChunkSizer, ContentHash, EmbedError, Embedder, EmbedderSpec, Fingerprint,
    GroupBy, InputKind, Mode, Principal, QueryOptions,
};
use quarry_index::vectors::{VectorIndex, VectorParams};
use quarry_index::{
    EmbedderSource, Engine, EngineOptions, IngestOptions, NoProgress, SearchResponse, Searcher,
};
use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Collection the corpus is ingested into.
const COLLECTION: &str = "scifact";
/// Name of the stub embedder in the engine's options.
const EMBEDDER: &str = "ref";
/// Dimensions of all-MiniLM-L6-v2.
const DIMS: usize = 384;
/// Passes over the test queries for the printed percentiles (after one untimed warm-up pass).
const QUERY_PASSES: usize = 5;

/// The settings measured: criterion group, function, `top_k`, mode.
const SETTINGS: [(&str, &str, usize, Mode); 4] = [
    ("hybrid", "top10_document", 10, Mode::Hybrid),
    ("hybrid", "top100_document", 100, Mode::Hybrid),
    ("bm25", "top10_document", 10, Mode::Bm25),
    ("vector", "top10_document", 10, Mode::Vector),
];

/// The spec of the reference vectors (all-MiniLM-L6-v2 as sentence-transformers runs it).
fn reference_spec() -> EmbedderSpec {
    EmbedderSpec {
        provider: "local".into(),
        model: "all-MiniLM-L6-v2".into(),
        revision: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db".into(),
        dimensions: DIMS,
        pooling: "mean".into(),
        normalized: true,
        max_tokens: 256,
        query_prefix: String::new(),
        document_prefix: String::new(),
    }
}

/// An embedder with the reference spec that cannot embed: vectors come from Parquet, and a call
/// during the benchmark would be a bug.
struct StubEmbedder {
    spec: EmbedderSpec,
    fingerprint: Fingerprint,
}

impl Embedder for StubEmbedder {
    fn spec(&self) -> &EmbedderSpec {
        &self.spec
    }

    fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    fn embed(&self, _texts: &[&str], _kind: InputKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        Err(EmbedError::Model(
            "the hybrid bench's stub embedder cannot embed; vectors come from Parquet".into(),
        ))
    }
}

/// Resolves [`EMBEDDER`] to the stub and every other name to "no vectors".
struct StubSource(Arc<dyn Embedder>);

impl EmbedderSource for StubSource {
    fn get(&self, name: &str) -> quarry_index::Result<Option<Arc<dyn Embedder>>> {
        Ok((name == EMBEDDER).then(|| self.0.clone()))
    }
}

/// The stub embedder with the reference spec.
fn stub_embedder() -> Arc<dyn Embedder> {
    let spec = reference_spec();
    Arc::new(StubEmbedder {
        fingerprint: spec.fingerprint(),
        spec,
    })
}

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

/// A test query: its text, its vector (normalised) and its judgments.
struct TestQuery {
    text: String,
    vector: Vec<f32>,
    judged: Judgments,
}

/// The SciFact files.
struct Dataset {
    corpus: PathBuf,
    corpus_vectors: PathBuf,
    queries: Vec<TestQuery>,
}

impl Dataset {
    /// The dataset, or `None` (after saying why) when a file is missing.
    fn locate() -> Option<Dataset> {
        let Some(root) = std::env::var_os("QUARRY_DATASETS") else {
            eprintln!(
                "hybrid bench: QUARRY_DATASETS is not set; nothing to measure. Set it to the folder \
                 that holds BEIR SciFact as scifact/, with the all-MiniLM-L6-v2 vectors (see \
                 DEVELOPERS.md, \"Datasets\")."
            );
            return None;
        };
        let dir = PathBuf::from(root).join("scifact");
        let files = [
            "corpus.jsonl",
            "queries.jsonl",
            "qrels/test.tsv",
            "minilm-corpus.parquet",
            "minilm-queries.parquet",
        ];
        if let Some(missing) = files.iter().find(|f| !dir.join(f).is_file()) {
            eprintln!(
                "hybrid bench: {} is missing; nothing to measure. Put the BEIR SciFact files and \
                 the all-MiniLM-L6-v2 vectors there ({}) to run this benchmark.",
                dir.join(missing).display(),
                files.join(", ")
            );
            return None;
        }
        let started = Instant::now();
        let query_vectors: HashMap<String, Vec<f32>> =
            read_vectors(&dir.join("minilm-queries.parquet"))
                .into_iter()
                .collect();
        let queries = test_queries(&dir)
            .into_iter()
            .map(|(id, text, judged)| {
                let mut vector = query_vectors
                    .get(&id)
                    .unwrap_or_else(|| panic!("test query {id} has no vector"))
                    .clone();
                quarry_core::embed::normalize(&mut vector);
                TestQuery {
                    text,
                    vector,
                    judged,
                }
            })
            .collect::<Vec<_>>();
        assert!(
            !queries.is_empty(),
            "no test queries found in {}",
            dir.display()
        );
        eprintln!(
            "hybrid bench: {} test queries with vectors read in {:.0} ms",
            queries.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
        Some(Dataset {
            corpus: dir.join("corpus.jsonl"),
            corpus_vectors: dir.join("minilm-corpus.parquet"),
            queries,
        })
    }
}

/// `(id, text, judgments)` of the judged queries of `qrels/test.tsv`, in id order.
fn test_queries(dir: &Path) -> Vec<(String, String, Judgments)> {
    quarry_index::eval::read_beir_cases(dir, "test")
        .expect("read SciFact's test queries and judgments")
        .into_iter()
        .map(|c| (c.id, c.text, c.judged))
        .collect()
}

/// `(id, vector)` rows of a vector file, read with quarry's one Parquet reader.
fn read_vectors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let rows = quarry_index::ingest::parquet::read_all(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    if let Some((id, v)) = rows.iter().find(|(_, v)| v.len() != DIMS) {
        panic!(
            "{}: vector {id} has {} dimensions, {DIMS} expected",
            path.display(),
            v.len()
        );
    }
    rows
}

/// The engine holding the corpus and its vectors, and a searcher over it.
struct Loaded {
    engine: Engine,
    searcher: Searcher,
    /// A second engine on the same directory, configured to scan every vector instead of the HNSW
    /// graph (`vector.exact_threshold` above the collection size), and its searcher: for the
    /// printed comparison only, not a criterion benchmark.
    exact: (Engine, Searcher),
    /// Document id of each chunk that got a vector.
    doc_of: HashMap<ContentHash, String>,
    _dir: TempDir,
}

impl Loaded {
    fn new(data: &Dataset) -> Loaded {
        let total = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("quarry-bench-hybrid-")
            .tempdir()
            .expect("create a temporary directory");
        let spec = reference_spec();
        let stub = stub_embedder();
        let options = EngineOptions {
            chunk: ChunkOptions {
                max_tokens: 4096,
                overlap: 0,
                sizer: ChunkSizer::Chars,
                // each document is one chunk: its context is the title and the chunk itself
                context_chars: 0,
            },
            embedder: EMBEDDER.into(),
            embedders: Some(Arc::new(StubSource(stub))),
            ..EngineOptions::default()
        };
        let engine = Engine::open(dir.path(), options.clone()).expect("open engine");

        let started = Instant::now();
        // Create the collection, with its active version of the stub embedder, before the ingest
        // (an empty apply). Not needed in principle, but `Engine::chunker` used to lock the catalog
        // twice, a deadlock, for a collection without an active version, as a fresh ingest is.
        engine
            .apply_with(COLLECTION, Vec::new(), false)
            .expect("create the collection");
        let summary = quarry_index::ingest(
            &engine,
            std::slice::from_ref(&data.corpus),
            &IngestOptions {
                collection: COLLECTION.into(),
                embed: false,
                ..Default::default()
            },
            &NoProgress,
        )
        .expect("ingest the corpus");
        let t_ingest = started.elapsed();
        assert!(summary.added > 0, "ingest added no documents: {summary:?}");
        assert_eq!(
            summary.chunks, summary.added,
            "every document should be one chunk: {summary:?}"
        );
        assert_eq!(
            summary.embedded, 0,
            "nothing should be embedded: {summary:?}"
        );

        let started = Instant::now();
        let corpus = read_vectors(&data.corpus_vectors);
        let t_read = started.elapsed();

        let started = Instant::now();
        let mut doc_of: HashMap<ContentHash, String> = HashMap::with_capacity(corpus.len());
        let mut rows = Vec::with_capacity(corpus.len());
        let mut shared = 0usize;
        for (id, vector) in corpus {
            let hashes = engine
                .doc_chunk_hashes(COLLECTION, &id)
                .expect("chunk hashes of a document");
            assert_eq!(
                hashes.len(),
                1,
                "document {id} has {} chunks; one expected",
                hashes.len()
            );
            if doc_of.insert(hashes[0], id).is_some() {
                shared += 1; // identical texts share a chunk: load its vector once
                continue;
            }
            rows.push((hashes[0], vector));
        }
        let t_lookup = started.elapsed();

        let started = Instant::now();
        let loaded = engine
            .put_vectors(COLLECTION, &spec, rows)
            .expect("load the corpus vectors");
        let t_put = started.elapsed();

        let started = Instant::now();
        engine.flush().expect("flush");
        let searcher = engine.searcher(COLLECTION).expect("searcher");
        let t_flush = started.elapsed();
        let exact_engine = Engine::open(
            dir.path(),
            EngineOptions {
                vector: VectorParams {
                    exact_threshold: usize::MAX,
                    ..options.vector
                },
                ..options
            },
        )
        .expect("open a second engine");
        let exact_searcher = exact_engine
            .searcher(COLLECTION)
            .expect("searcher of the second engine");
        eprintln!(
            "hybrid bench setup: {:.2} s in all: ingest {:.2} s ({} docs, {} chunks), read corpus \
             vectors {:.2} s, chunk lookups {:.2} s, put_vectors {:.2} s ({loaded} vectors, \
             {shared} documents sharing a chunk), flush + searcher {:.2} s; {} chunks searchable, \
             embedding version {}",
            total.elapsed().as_secs_f64(),
            t_ingest.as_secs_f64(),
            summary.added,
            summary.chunks,
            t_read.as_secs_f64(),
            t_lookup.as_secs_f64(),
            t_put.as_secs_f64(),
            t_flush.as_secs_f64(),
            searcher.num_chunks(),
            searcher.embedding_version().unwrap_or("none"),
        );
        Loaded {
            engine,
            searcher,
            exact: (exact_engine, exact_searcher),
            doc_of,
            _dir: dir,
        }
    }

    /// One query on the searcher.
    fn search(&self, q: &QueryOptions, vector: &[f32]) -> SearchResponse {
        search(&self.searcher, q, vector)
    }
}

/// One query on `searcher` with its precomputed vector, timed part of the benchmark: the vector
/// is cloned as a caller would hand over a freshly embedded one.
fn search(searcher: &Searcher, q: &QueryOptions, vector: &[f32]) -> SearchResponse {
    searcher
        .search_with_vector(q, &Principal::local_admin(), Some(Ok(vector.to_vec())))
        .expect("search")
}

/// True when this run measures (`cargo bench`), false for the one-shot smoke test of
/// `cargo test --benches` or for `--list`: the extra passes run only when measuring.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}

/// Nearest-rank percentile ([`percentile`]) of sorted durations, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let ms: Vec<f64> = sorted.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    percentile(&ms, p)
}

/// The queries of one setting.
fn queries_of(data: &Dataset, top_k: usize, mode: Mode) -> Vec<QueryOptions> {
    data.queries
        .iter()
        .map(|t| {
            QueryOptions::new(t.text.as_str(), top_k, mode, GroupBy::Document).expect("valid query")
        })
        .collect()
}

/// Time this thread has spent on a CPU, from `/proc/thread-self/schedstat` (Linux; `None`
/// elsewhere). On a machine shared with other work, wall time includes waiting for a CPU; this
/// does not.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Wall and on-CPU time of `f` (the CPU time is `None` when it cannot be read). The wall clock is
/// read inside the CPU-time reads, so reading `/proc` costs the wall figure nothing.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Option<Duration>) {
    let cpu_before = thread_cpu_time();
    let started = Instant::now();
    let out = f();
    let wall = started.elapsed();
    let cpu = thread_cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    (out, wall, cpu)
}

/// `p50 …, p95 …, p99 …, max …, mean …` of durations, in milliseconds.
fn summary_ms(mut times: Vec<Duration>) -> String {
    times.sort();
    let mean_ms = times.iter().sum::<Duration>().as_secs_f64() * 1e3 / times.len() as f64;
    format!(
        "p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, max {:.3} ms, mean {:.3} ms",
        percentile_ms(&times, 50.0),
        percentile_ms(&times, 95.0),
        percentile_ms(&times, 99.0),
        percentile_ms(&times, 100.0),
        mean_ms,
    )
}

/// Times every query individually over several passes and prints p50/p95/p99 of wall time, the
/// same percentiles of each query's best time over the passes (a machine busy with other work
/// preempts some runs; the best of a few is close to what the query costs alone), and the mean time
/// on a CPU per query (the thread's CPU time is only updated at scheduler ticks, so only its sum
/// over many queries is meaningful, not per-query percentiles).
fn report_latency(name: &str, searcher: &Searcher, data: &Dataset, queries: &[QueryOptions]) {
    for (q, t) in queries.iter().zip(&data.queries) {
        black_box(search(searcher, q, &t.vector));
    }
    let mut wall = Vec::with_capacity(queries.len() * QUERY_PASSES);
    let mut best = vec![Duration::MAX; queries.len()];
    let mut cpu = Some(Duration::ZERO);
    for _ in 0..QUERY_PASSES {
        for (i, (q, t)) in queries.iter().zip(&data.queries).enumerate() {
            let (response, w, c) = timed(|| search(searcher, q, &t.vector));
            black_box(response);
            wall.push(w);
            best[i] = best[i].min(w);
            cpu = cpu.zip(c).map(|(sum, c)| sum + c);
        }
    }
    let n = wall.len();
    let wall_mean_ms = wall.iter().sum::<Duration>().as_secs_f64() * 1e3 / n as f64;
    eprintln!(
        "{name}: {} queries x {QUERY_PASSES} passes: wall {}",
        queries.len(),
        summary_ms(wall)
    );
    eprintln!(
        "{name}: best of {QUERY_PASSES} per query: {}",
        summary_ms(best)
    );
    if let Some(cpu) = cpu {
        let cpu_mean_ms = cpu.as_secs_f64() * 1e3 / n as f64;
        // a hybrid query's BM25 side runs on a rayon thread, which this does not count
        eprintln!(
            "{name}: on-CPU mean {cpu_mean_ms:.3} ms per query on the calling thread (wall mean \
             is {:.1}x that)",
            wall_mean_ms / cpu_mean_ms
        );
    }
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

/// Prints nDCG@10 of one setting on `searcher` against the test qrels, checking that no answer
/// is degraded.
fn report_ndcg(name: &str, searcher: &Searcher, data: &Dataset, top_k: usize, mode: Mode) {
    let mut sum = 0.0;
    for (q, t) in queries_of(data, top_k, mode).iter().zip(&data.queries) {
        let response = search(searcher, q, &t.vector);
        assert!(
            !response.degraded && response.warnings.is_empty(),
            "{name}: degraded answer for {:?}: {:?}",
            q.text,
            response.warnings
        );
        let ranked: Vec<String> = response.results.into_iter().map(|h| h.doc_id).collect();
        sum += ndcg_at_k(&ranked, &t.judged, 10);
    }
    eprintln!(
        "quality {name}: nDCG@10 {:.4} over {} test queries",
        sum / data.queries.len() as f64,
        data.queries.len()
    );
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
            let (exact, w, c) = timed(|| snapshot.exact_search(&t.vector, k));
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

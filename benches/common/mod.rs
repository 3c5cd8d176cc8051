//! Setup and measurement shared by the SciFact benches (`hybrid`, `filters`, `diversity`): the
//! dataset with its precomputed all-MiniLM-L6-v2 vectors, an engine holding it without a model
//! (the `hybrid` bench's module doc describes the setup), and per-query timing and percentiles.
//! Each bench uses a part of it, hence `dead_code` allowed here.
#![allow(dead_code)]

use quarry_core::metrics::{Judgments, ndcg_at_k};
use quarry_core::stats::percentile;
use quarry_core::{
    ChunkOptions, ChunkSizer, ContentHash, EmbedError, Embedder, EmbedderSpec, Fingerprint,
    GroupBy, InputKind, Mode, Principal, QueryOptions,
};
use quarry_index::vectors::VectorParams;
use quarry_index::{
    EmbedderSource, Engine, EngineOptions, IngestOptions, NoProgress, SearchResponse, Searcher,
};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Collection the corpus is ingested into.
pub(crate) const COLLECTION: &str = "scifact";
/// Name of the stub embedder in the engine's options.
pub(crate) const EMBEDDER: &str = "ref";
/// Dimensions of all-MiniLM-L6-v2.
pub(crate) const DIMS: usize = 384;
/// Passes over the test queries for the printed percentiles (after one untimed warm-up pass).
pub(crate) const QUERY_PASSES: usize = 5;

/// The spec of the reference vectors (all-MiniLM-L6-v2 as sentence-transformers runs it).
pub(crate) fn reference_spec() -> EmbedderSpec {
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
pub(crate) struct StubEmbedder {
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
pub(crate) struct StubSource(Arc<dyn Embedder>);

impl EmbedderSource for StubSource {
    fn get(&self, name: &str) -> quarry_index::Result<Option<Arc<dyn Embedder>>> {
        Ok((name == EMBEDDER).then(|| self.0.clone()))
    }
}

/// The stub embedder with the reference spec.
pub(crate) fn stub_embedder() -> Arc<dyn Embedder> {
    let spec = reference_spec();
    Arc::new(StubEmbedder {
        fingerprint: spec.fingerprint(),
        spec,
    })
}

/// A test query: its text, its vector (normalised) and its judgments.
pub(crate) struct TestQuery {
    pub(crate) text: String,
    pub(crate) vector: Vec<f32>,
    pub(crate) judged: Judgments,
}

/// The SciFact files.
pub(crate) struct Dataset {
    pub(crate) corpus: PathBuf,
    pub(crate) corpus_vectors: PathBuf,
    pub(crate) queries: Vec<TestQuery>,
}

impl Dataset {
    /// The dataset, or `None` (after saying why) when a file is missing.
    pub(crate) fn locate() -> Option<Dataset> {
        let Some(root) = std::env::var_os("QUARRY_DATASETS") else {
            eprintln!(
                "bench: QUARRY_DATASETS is not set; nothing to measure. Set it to the folder \
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
                "bench: {} is missing; nothing to measure. Put the BEIR SciFact files and \
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
            "bench: {} test queries with vectors read in {:.0} ms",
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
pub(crate) fn test_queries(dir: &Path) -> Vec<(String, String, Judgments)> {
    quarry_index::eval::read_beir_cases(dir, "test")
        .expect("read SciFact's test queries and judgments")
        .into_iter()
        .map(|c| (c.id, c.text, c.judged))
        .collect()
}

/// `(id, vector)` rows of a vector file, read with quarry's one Parquet reader.
pub(crate) fn read_vectors(path: &Path) -> Vec<(String, Vec<f32>)> {
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
pub(crate) struct Loaded {
    pub(crate) engine: Engine,
    pub(crate) searcher: Searcher,
    /// A second engine on the same directory, configured to scan every vector instead of the HNSW
    /// graph (`vector.exact_threshold` above the collection size), and its searcher: for the
    /// printed comparison only, not a criterion benchmark.
    pub(crate) exact: (Engine, Searcher),
    /// Document id of each chunk that got a vector.
    pub(crate) doc_of: HashMap<ContentHash, String>,
    _dir: TempDir,
}

impl Loaded {
    pub(crate) fn new(data: &Dataset) -> Loaded {
        Loaded::with_corpus(data, &data.corpus)
    }

    /// [`Loaded::new`] with another corpus file of the same documents in the same order (the
    /// same texts, other metadata).
    pub(crate) fn with_corpus(data: &Dataset, corpus: &Path) -> Loaded {
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
            &[corpus.to_path_buf()],
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
            .expect("load the corpus vectors")
            .loaded;
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
            "bench setup: {:.2} s in all: ingest {:.2} s ({} docs, {} chunks), read corpus \
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
    pub(crate) fn search(&self, q: &QueryOptions, vector: &[f32]) -> SearchResponse {
        search(&self.searcher, q, vector)
    }
}

/// One query on `searcher` with its precomputed vector, timed part of the benchmark: the vector
/// is cloned as a caller would hand over a freshly embedded one.
pub(crate) fn search(searcher: &Searcher, q: &QueryOptions, vector: &[f32]) -> SearchResponse {
    searcher
        .search_with_vector(q, &Principal::local_admin(), Some(Ok(vector.to_vec())))
        .expect("search")
}

/// True when this run measures (`cargo bench`), false for the one-shot smoke test of
/// `cargo test --benches` or for `--list`: the extra passes run only when measuring.
pub(crate) fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}

/// Nearest-rank percentile ([`percentile`]) of sorted durations, in milliseconds.
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let ms: Vec<f64> = sorted.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    percentile(&ms, p)
}

/// The queries of one setting.
pub(crate) fn queries_of(data: &Dataset, top_k: usize, mode: Mode) -> Vec<QueryOptions> {
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
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Wall and on-CPU time of `f` (the CPU time is `None` when it cannot be read). The wall clock is
/// read inside the CPU-time reads, so reading `/proc` costs the wall figure nothing.
pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Option<Duration>) {
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
pub(crate) fn summary_ms(mut times: Vec<Duration>) -> String {
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
pub(crate) fn report_latency(
    name: &str,
    searcher: &Searcher,
    data: &Dataset,
    queries: &[QueryOptions],
) {
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

/// Wall times of two settings of the same queries (`a[i]` and `b[i]` are the i-th test query),
/// measured in turn query by query over [`QUERY_PASSES`] passes after a warm-up pass, so that a
/// busy machine slows both alike: `(a's times, b's times)`, each sorted.
pub(crate) fn paired_latency(
    searcher: &Searcher,
    data: &Dataset,
    a: &[QueryOptions],
    b: &[QueryOptions],
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for pass in 0..=QUERY_PASSES {
        for ((qa, qb), t) in a.iter().zip(b).zip(&data.queries) {
            let (ra, wa, _) = timed(|| search(searcher, qa, &t.vector));
            let (rb, wb, _) = timed(|| search(searcher, qb, &t.vector));
            black_box((ra, rb));
            if pass > 0 {
                ta.push(wa);
                tb.push(wb);
            }
        }
    }
    ta.sort();
    tb.sort();
    (ta, tb)
}

/// Prints nDCG@10 of one setting on `searcher` against the test qrels, checking that no answer
/// is degraded.
pub(crate) fn report_ndcg(
    name: &str,
    searcher: &Searcher,
    data: &Dataset,
    top_k: usize,
    mode: Mode,
) -> f64 {
    ndcg_of(name, searcher, data, &queries_of(data, top_k, mode))
}

/// Prints and returns the mean nDCG@10 of `queries` (the i-th is the i-th test query) on
/// `searcher`, checking that no answer is degraded or warned about.
pub(crate) fn ndcg_of(
    name: &str,
    searcher: &Searcher,
    data: &Dataset,
    queries: &[QueryOptions],
) -> f64 {
    let mut sum = 0.0;
    for (q, t) in queries.iter().zip(&data.queries) {
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
    let mean = sum / data.queries.len() as f64;
    eprintln!(
        "quality {name}: nDCG@10 {mean:.4} over {} test queries",
        data.queries.len()
    );
    mean
}

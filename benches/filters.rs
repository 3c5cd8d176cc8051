//! Metadata filters on SciFact by selectivity: recall@10 of filtered vector and hybrid search
//! against exact filtered answers, and the latency a filter adds to hybrid queries. Measured in
//! process, without embedding the query.
//!
//! Setup as the `hybrid` bench's (see its module doc: BEIR SciFact and the precomputed
//! all-MiniLM-L6-v2 vectors in `$QUARRY_DATASETS/scifact`, an engine with a stub embedder, one
//! chunk per document), except that the corpus ingested is `corpus.jsonl` with synthetic metadata:
//! document `i` (its line in the file, from 0) gets `{"bucket": i % 1000}`. A filter
//! `{"field": "bucket", "lt": 1000·p}` then admits a fraction `p` of the documents; `p` is 100 %,
//! 10 %, 1 % and 0.1 %. With the dataset missing it says so and measures nothing.
//!
//! Printed on stderr (only with `cargo bench`, not the smoke test of `cargo test --benches`), for
//! each `p`, over the 300 test queries at `top_k=10`, `group_by=document`:
//!
//! * **vector recall@10**: the filtered `mode=vector` answer against the exact filtered top 10, a
//!   brute-force scan of the admitted documents' vectors (target ≥ 0.99);
//! * **hybrid recall@10**: the filtered `mode=hybrid` answer against the same query through a
//!   second engine on the same directory whose `vector.exact_threshold` makes it scan every
//!   vector (target ≥ 0.99);
//! * **hybrid latency**: p50/p99 of the filtered query and of the unfiltered one, timed in turn
//!   query by query over 5 passes in the same run (target at 10 %: filtered p99 ≤ 2 × unfiltered
//!   p99).
//!
//! Criterion then measures `filters/hybrid_top10_document` (unfiltered, the baseline) and
//! `filters/hybrid_top10_document_bucket10pct`.
//!
//! ```text
//! QUARRY_DATASETS=/path/to/datasets cargo bench --bench filters
//! ```

mod common;

use common::{Dataset, Loaded, measuring, paired_latency, percentile_ms, queries_of, search};
use criterion::Criterion;
use quarry_core::{Mode, QueryOptions};
use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;
use tempfile::TempDir;

/// Buckets of the synthetic metadata: document `i` is in bucket `i % BUCKETS`.
const BUCKETS: usize = 1000;
/// Admitted fractions measured.
const FRACTIONS: [f64; 4] = [1.0, 0.1, 0.01, 0.001];

/// `corpus.jsonl` with `{"bucket": i % 1000}` as each record's metadata, written to `dir`; and
/// each document's bucket.
fn bucketed_corpus(data: &Dataset, dir: &Path) -> (std::path::PathBuf, HashMap<String, usize>) {
    let path = dir.join("corpus-buckets.jsonl");
    let input = std::fs::File::open(&data.corpus).expect("open corpus.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create corpus"));
    let mut buckets = HashMap::new();
    for (i, line) in std::io::BufReader::new(input).lines().enumerate() {
        let mut record: serde_json::Value =
            serde_json::from_str(&line.expect("read corpus.jsonl")).expect("a JSON record");
        let bucket = i % BUCKETS;
        record["metadata"] = serde_json::json!({ "bucket": bucket });
        let id = record["_id"].as_str().expect("an _id").to_owned();
        buckets.insert(id, bucket);
        writeln!(out, "{record}").expect("write corpus");
    }
    out.flush().expect("write corpus");
    (path, buckets)
}

/// The loaded engine with bucketed documents, and what the oracle needs.
struct Setup {
    loaded: Loaded,
    /// Bucket of each document.
    buckets: HashMap<String, usize>,
    /// Each document's vector, normalised.
    vectors: Vec<(String, Vec<f32>)>,
    _dir: TempDir,
}

impl Setup {
    fn new(data: &Dataset) -> Setup {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (corpus, buckets) = bucketed_corpus(data, dir.path());
        let loaded = Loaded::with_corpus(data, &corpus);
        let vectors = common::read_vectors(&data.corpus_vectors)
            .into_iter()
            .map(|(id, mut v)| {
                quarry_core::embed::normalize(&mut v);
                (id, v)
            })
            .collect();
        Setup {
            loaded,
            buckets,
            vectors,
            _dir: dir,
        }
    }

    /// The exact top 10 documents by cosine among those in a bucket below `below`.
    fn exact_top10(&self, query: &[f32], below: usize) -> HashSet<String> {
        let mut scored: Vec<(f32, &str)> = self
            .vectors
            .iter()
            .filter(|(id, _)| self.buckets.get(id).is_some_and(|b| *b < below))
            .map(|(id, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum(), id.as_str()))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        scored
            .into_iter()
            .take(10)
            .map(|(_, id)| id.to_owned())
            .collect()
    }
}

/// The filter admitting buckets below `below`.
fn bucket_filter(below: usize) -> serde_json::Value {
    serde_json::json!({"field": "bucket", "lt": below})
}

/// The test queries at `top_k=10`, by document, in `mode`, with the filter of `below` (none for
/// `None`).
fn filtered(data: &Dataset, mode: Mode, below: Option<usize>) -> Vec<QueryOptions> {
    queries_of(data, 10, mode)
        .into_iter()
        .map(|q| match below {
            Some(b) => q.with_filter(&bucket_filter(b)).expect("a valid filter"),
            None => q,
        })
        .collect()
}

/// Document ids of an answer.
fn doc_ids(searcher: &quarry_index::Searcher, q: &QueryOptions, vector: &[f32]) -> Vec<String> {
    let response = search(searcher, q, vector);
    assert!(
        !response.degraded && response.warnings.is_empty(),
        "{:?}",
        response.warnings
    );
    response.results.into_iter().map(|h| h.doc_id).collect()
}

/// The recall and latency report of the module doc.
fn report(setup: &Setup, data: &Dataset) {
    let loaded = &setup.loaded;
    let plain = filtered(data, Mode::Hybrid, None);
    for p in FRACTIONS {
        let below = (BUCKETS as f64 * p).round() as usize;
        let admitted = setup.buckets.values().filter(|b| **b < below).count();
        // vector: against a brute-force scan of the admitted documents
        let (mut hits, mut want_total) = (0usize, 0usize);
        for (q, t) in filtered(data, Mode::Vector, Some(below))
            .iter()
            .zip(&data.queries)
        {
            let want = setup.exact_top10(&t.vector, below);
            let got = doc_ids(&loaded.searcher, q, &t.vector);
            assert!(
                got.iter().all(|id| setup.buckets[id] < below),
                "a hit outside the filter"
            );
            hits += got.iter().filter(|id| want.contains(*id)).count();
            want_total += want.len();
        }
        let vector_recall = hits as f64 / want_total.max(1) as f64;
        // hybrid: against the same query scanning every vector
        let hybrid = filtered(data, Mode::Hybrid, Some(below));
        let (mut hits, mut want_total) = (0usize, 0usize);
        for (q, t) in hybrid.iter().zip(&data.queries) {
            let want: HashSet<String> =
                doc_ids(&loaded.exact.1, q, &t.vector).into_iter().collect();
            let got = doc_ids(&loaded.searcher, q, &t.vector);
            hits += got.iter().filter(|id| want.contains(*id)).count();
            want_total += want.len();
        }
        let hybrid_recall = hits as f64 / want_total.max(1) as f64;
        let (base, with) = paired_latency(&loaded.searcher, data, &plain, &hybrid);
        let ms = |t: &[Duration], q: f64| percentile_ms(t, q);
        eprintln!(
            "filter bucket < {below:>4} ({:>5.1} %, {admitted} documents): recall@10 vector {vector_recall:.4}, \
             hybrid {hybrid_recall:.4}; hybrid latency filtered p50 {:.3} ms p99 {:.3} ms, \
             unfiltered p50 {:.3} ms p99 {:.3} ms (same run): p99 ratio {:.2}",
            p * 100.0,
            ms(&with, 50.0),
            ms(&with, 99.0),
            ms(&base, 50.0),
            ms(&base, 99.0),
            ms(&with, 99.0) / ms(&base, 99.0),
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    if let Some(data) = Dataset::locate() {
        let cell: OnceCell<Setup> = OnceCell::new();
        let setup = || {
            cell.get_or_init(|| {
                let setup = Setup::new(&data);
                if measuring() {
                    report(&setup, &data);
                }
                setup
            })
        };
        let mut group = c.benchmark_group("filters");
        group
            .sample_size(50)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        for (function, below) in [
            ("hybrid_top10_document", None),
            ("hybrid_top10_document_bucket10pct", Some(BUCKETS / 10)),
        ] {
            let queries = filtered(&data, Mode::Hybrid, below);
            group.bench_function(function, |b| {
                let searcher = &setup().loaded.searcher;
                let mut next = queries.iter().zip(&data.queries).cycle();
                b.iter(|| {
                    let (q, t) = next.next().expect("cycle over a non-empty list");
                    search(searcher, q, &t.vector)
                });
            });
        }
        group.finish();
    }
    c.final_summary();
}

//! Diversity (`diversify`, maximal marginal relevance) on SciFact: what it costs in nDCG@10, how
//! much it spreads the top 10, and the latency it adds. Measured in process, without embedding
//! the query.
//!
//! Setup as the `hybrid` bench's (see its module doc: BEIR SciFact and the precomputed
//! all-MiniLM-L6-v2 vectors in `$QUARRY_DATASETS/scifact`, an engine with a stub embedder, one
//! chunk per document, so a document's stored vector is its reference vector). With the dataset
//! missing it says so and measures nothing.
//!
//! Printed on stderr (only with `cargo bench`, not the smoke test of `cargo test --benches`), over
//! the 300 test queries, `mode=hybrid` (default fusion), `top_k=10`, `group_by=document`:
//!
//! * for no `diversify` and λ = 1, 0.95, 0.9, 0.8, 0.7, 0.5: nDCG@10 against the test qrels
//!   (target at λ = 0.7: a drop of at most 0.01) and the mean pairwise cosine of the 10 hits'
//!   vectors (lower is more diverse);
//! * the latency with and without λ = 0.7, timed in turn query by query over 5 passes: p50 and
//!   p99 of each and the p50 difference (target ≤ 1 ms). MMR runs over the first 100 fused
//!   candidates (`max(100, top_k + offset)`; here the fused list has more than 100).
//!
//! Criterion then measures `diversity/hybrid_top10_document` (the baseline),
//! `diversity/hybrid_top10_document_lambda0.7`, and `diversity/mmr_100x384`: the MMR function
//! alone over the 100 best fused candidates of the first test query and their 384-dimension
//! vectors.
//!
//! ```text
//! QUARRY_DATASETS=/path/to/datasets cargo bench --bench diversity
//! ```

mod common;

use common::{
    Dataset, Loaded, measuring, ndcg_of, paired_latency, percentile_ms, queries_of, search,
};
use criterion::Criterion;
use quarry_core::diversity::mmr;
use quarry_core::{Diversify, GroupBy, Mode, QueryOptions};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

/// λs reported (`None`: no diversity).
const LAMBDAS: [Option<f32>; 7] = [
    None,
    Some(1.0),
    Some(0.95),
    Some(0.9),
    Some(0.8),
    Some(0.7),
    Some(0.5),
];

/// The loaded engine and each document's vector, normalised.
struct Setup {
    loaded: Loaded,
    vectors: HashMap<String, Vec<f32>>,
}

impl Setup {
    fn new(data: &Dataset) -> Setup {
        let vectors = common::read_vectors(&data.corpus_vectors)
            .into_iter()
            .map(|(id, mut v)| {
                quarry_core::embed::normalize(&mut v);
                (id, v)
            })
            .collect();
        Setup {
            loaded: Loaded::new(data),
            vectors,
        }
    }

    /// Mean cosine over the pairs of `docs`' vectors.
    fn mean_pairwise_cosine(&self, docs: &[String]) -> Option<f64> {
        let v: Vec<&Vec<f32>> = docs.iter().filter_map(|d| self.vectors.get(d)).collect();
        let (mut sum, mut pairs) = (0.0f64, 0usize);
        for i in 0..v.len() {
            for j in i + 1..v.len() {
                sum += v[i].iter().zip(v[j]).map(|(a, b)| a * b).sum::<f32>() as f64;
                pairs += 1;
            }
        }
        (pairs > 0).then(|| sum / pairs as f64)
    }
}

/// The test queries at `top_k=10`, by document, hybrid, with `diversify` at `lambda`.
fn diversified(data: &Dataset, lambda: Option<f32>) -> Vec<QueryOptions> {
    queries_of(data, 10, Mode::Hybrid)
        .into_iter()
        .map(|q| {
            q.with_diversify(lambda.map(|lambda| Diversify { lambda }))
                .expect("a valid λ")
        })
        .collect()
}

/// The quality and latency report of the module doc.
fn report(setup: &Setup, data: &Dataset) {
    let searcher = &setup.loaded.searcher;
    for lambda in LAMBDAS {
        let queries = diversified(data, lambda);
        let name = match lambda {
            Some(l) => format!("hybrid/top10_document diversify λ={l}"),
            None => "hybrid/top10_document".to_owned(),
        };
        let ndcg = ndcg_of(&name, searcher, data, &queries);
        let (mut sum, mut n) = (0.0, 0usize);
        for (q, t) in queries.iter().zip(&data.queries) {
            let docs: Vec<String> = search(searcher, q, &t.vector)
                .results
                .into_iter()
                .map(|h| h.doc_id)
                .collect();
            if let Some(c) = setup.mean_pairwise_cosine(&docs) {
                sum += c;
                n += 1;
            }
        }
        eprintln!(
            "diversity {name}: nDCG@10 {ndcg:.4}, mean pairwise cosine of the top 10 {:.4}",
            sum / n.max(1) as f64
        );
    }
    let (base, with) = paired_latency(
        searcher,
        data,
        &diversified(data, None),
        &diversified(data, Some(0.7)),
    );
    let ms = |t: &[Duration], q: f64| percentile_ms(t, q);
    eprintln!(
        "diversity latency (same run, in turn): λ=0.7 p50 {:.3} ms p99 {:.3} ms; without p50 {:.3} \
         ms p99 {:.3} ms; added p50 {:.3} ms",
        ms(&with, 50.0),
        ms(&with, 99.0),
        ms(&base, 50.0),
        ms(&base, 99.0),
        ms(&with, 50.0) - ms(&base, 50.0),
    );
}

/// The 100 best fused candidates of the first test query (by chunk: one per document here), as
/// scores and vectors.
fn mmr_input(setup: &Setup, data: &Dataset) -> (Vec<f32>, Vec<Vec<f32>>) {
    let t = &data.queries[0];
    let q = QueryOptions::new(t.text.as_str(), 100, Mode::Hybrid, GroupBy::Chunk)
        .expect("a valid query");
    search(&setup.loaded.searcher, &q, &t.vector)
        .results
        .into_iter()
        .filter_map(|h| Some((h.score, setup.vectors.get(&h.doc_id)?.clone())))
        .unzip()
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
        let mut group = c.benchmark_group("diversity");
        group
            .sample_size(50)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        for (function, lambda) in [
            ("hybrid_top10_document", None),
            ("hybrid_top10_document_lambda0.7", Some(0.7)),
        ] {
            let queries = diversified(&data, lambda);
            group.bench_function(function, |b| {
                let searcher = &setup().loaded.searcher;
                let mut next = queries.iter().zip(&data.queries).cycle();
                b.iter(|| {
                    let (q, t) = next.next().expect("cycle over a non-empty list");
                    search(searcher, q, &t.vector)
                });
            });
        }
        group.bench_function("mmr_100x384", |b| {
            let (scores, vectors) = mmr_input(setup(), &data);
            let refs: Vec<Option<&[f32]>> = vectors.iter().map(|v| Some(v.as_slice())).collect();
            b.iter(|| black_box(mmr(&scores, &refs, 0.7, scores.len())));
        });
        group.finish();
    }
    c.final_summary();
}

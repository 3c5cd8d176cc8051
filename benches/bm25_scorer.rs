//! BM25 query latency of quarry's own term scorer (`bm25::Bm25TermQuery`, exhaustive over the
//! terms' postings) against tantivy's `TermQuery`, whose unions block-max WAND prunes, over one
//! existing BM25 index folder: the best 100 chunks of each SciFact test query, every query five
//! times after a warm-up round of every way, p50 and p95 per way. Plain timing, no criterion: it
//! answers how much pruning the
//! custom scorer gives up (BENCHMARKS.md, "BM25 parameters").
//!
//! ```sh
//! QUARRY_DATASETS=… QUARRY_BM25_INDEX=/tmp/bm25-after/collections/beir-scifact/bm25 \
//!   cargo bench --bench bm25_scorer
//! ```
//!
//! Queries come from `$QUARRY_DATASETS/scifact`. Without the
//! index or the dataset it says so and measures nothing.

use quarry_core::Bm25Params;
use quarry_index::bm25::{ANALYZER, analysed_terms, analyzer, build_query};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::IndexRecordOption;

/// Builds one way's query from a query's terms and counts.
type MakeQuery = Box<dyn Fn(&[(tantivy::Term, u32)]) -> Box<dyn Query>>;

fn main() {
    let (Some(index_dir), Some(datasets)) = (
        std::env::var_os("QUARRY_BM25_INDEX").map(PathBuf::from),
        std::env::var_os("QUARRY_DATASETS").map(PathBuf::from),
    ) else {
        eprintln!(
            "bm25_scorer: set QUARRY_BM25_INDEX (a collection's bm25 folder) and QUARRY_DATASETS; skipped"
        );
        return;
    };
    let scifact = datasets.join("scifact");
    if !index_dir.join("meta.json").exists() || !scifact.join("queries.jsonl").exists() {
        eprintln!("bm25_scorer: no index at {index_dir:?} or no SciFact at {scifact:?}; skipped");
        return;
    }
    let index = tantivy::Index::open_in_dir(&index_dir).expect("open the index");
    index.tokenizers().register(ANALYZER, analyzer());
    let searcher = index.reader().expect("reader").searcher();
    let texts: Vec<String> = quarry_index::eval::read_beir_cases(&scifact, "test")
        .expect("SciFact test queries")
        .into_iter()
        .map(|c| c.text)
        .collect();
    let context = index
        .schema()
        .get_field("context")
        .expect("the context field");
    // each distinct analysed word with its count in the query, as `bm25::query_terms` makes them
    let queries: Vec<Vec<(tantivy::Term, u32)>> = texts
        .iter()
        .map(|text| {
            let mut terms: Vec<(tantivy::Term, u32)> = Vec::new();
            for word in analysed_terms(text) {
                terms.push((tantivy::Term::from_field_text(context, &word), 0));
            }
            let mut a = analyzer();
            let mut stream = a.token_stream(text);
            while let Some(token) = stream.next() {
                let term = tantivy::Term::from_field_text(context, &token.text);
                if let Some((_, n)) = terms.iter_mut().find(|(t, _)| *t == term) {
                    *n += 1;
                }
            }
            terms
        })
        .collect();
    let tantivys = |terms: &[(tantivy::Term, u32)]| -> Box<dyn Query> {
        Box::new(BooleanQuery::new(
            terms
                .iter()
                .map(|(t, _)| {
                    let q = TermQuery::new(t.clone(), IndexRecordOption::WithFreqs);
                    (Occur::Should, Box::new(q) as Box<dyn Query>)
                })
                .collect(),
        ))
    };
    let ways: Vec<(&str, MakeQuery)> = vec![
        (
            "tantivy TermQuery (k1 1.2, b 0.75, WAND)",
            Box::new(tantivys),
        ),
        (
            "quarry scorer k1 1.2, b 0.75, k3 0",
            Box::new(|t: &[(tantivy::Term, u32)]| {
                let p = Bm25Params::new(1.2, 0.75, 0.0).expect("parameters");
                build_query(t, p).expect("terms")
            }),
        ),
        (
            "quarry scorer, defaults",
            Box::new(|t: &[(tantivy::Term, u32)]| {
                build_query(t, Bm25Params::default()).expect("terms")
            }),
        ),
    ];
    let top = TopDocs::with_limit(100).order_by_score();
    // a first round warms the index's pages for every way; the second is reported
    for (round, (name, make)) in ways.iter().chain(ways.iter()).enumerate() {
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..5 {
            for terms in queries.iter().filter(|t| !t.is_empty()) {
                let started = Instant::now();
                let q = make(terms);
                std::hint::black_box(searcher.search(q.as_ref(), &top).expect("search"));
                times.push(started.elapsed());
            }
        }
        times.sort();
        let at = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
        if round < ways.len() {
            continue;
        }
        println!(
            "{name}: p50 {:.3} ms, p95 {:.3} ms ({} queries)",
            at(0.5),
            at(0.95),
            times.len()
        );
    }
}

//! Diversity through the searcher: the answer is MMR over the fused candidates and their stored
//! vectors, computed apart (the oracle); λ = 1 is the fused answer; grouping and `min_score`
//! still hold; a collection without vectors answers in the fused order with a warning.

use crate::bm25::chunk_key;
use crate::engine::Engine;
use crate::options::EngineOptions;
use crate::searcher::Searcher;
use crate::test_support::{Letters, put};
use quarry_core::diversity::mmr;
use quarry_core::{
    ChunkOptions, ChunkSizer, ContentHash, Diversify, GroupBy, Mode, Principal, QueryOptions,
};
use std::sync::Arc;

/// One chunk per document of up to 64 characters, letter-histogram vectors (or none).
fn engine(dir: &std::path::Path, vectors: bool) -> Engine {
    let options = EngineOptions {
        chunk: ChunkOptions {
            max_tokens: 64,
            overlap: 0,
            sizer: ChunkSizer::Chars,
            context_chars: 0,
        },
        embedder: if vectors { "letters" } else { "none" }.into(),
        embedders: Some(Arc::new(Letters)),
        ..EngineOptions::default()
    };
    let engine = Engine::open(dir, options).unwrap();
    // three anagrams of one another (the same letters: cosine 1), and apples of other kinds
    let docs = [
        ("d0", "quick apple pie recipe"),
        ("d1", "recipe quick pie apple"),
        ("d2", "pie apple recipe quick"),
        ("d3", "apple zebra jumps over the lazy fox"),
        ("d4", "apple orchard on a mountain by the river valley"),
        ("d5", "xylophone music about an apple"),
        ("d6", "pie crust without any fruit"),
        ("d7", "lorem ipsum dolor sit amet"),
    ];
    for (id, text) in docs {
        put(&engine, "c", id, text);
    }
    engine
}

fn query(top_k: usize, mode: Mode, lambda: Option<f32>) -> QueryOptions {
    QueryOptions::new("apple pie recipe", top_k, mode, GroupBy::Chunk)
        .unwrap()
        .with_diversify(lambda.map(|lambda| Diversify { lambda }))
        .unwrap()
}

/// `(chunk id, score)` of each hit.
fn ranked(s: &Searcher, q: &QueryOptions) -> Vec<(String, f32)> {
    let answer = s.search(q, &Principal::local_admin()).unwrap();
    assert!(answer.warnings.is_empty(), "{:?}", answer.warnings);
    answer
        .results
        .into_iter()
        .map(|h| (h.chunk_id, h.score))
        .collect()
}

/// MMR computed apart over the fused answer (all candidates: fewer than 100) and the stored
/// vectors.
fn oracle(s: &Searcher, fused: &[(String, f32)], lambda: f32) -> Vec<String> {
    let keys: Vec<u64> = fused
        .iter()
        .map(|(id, _)| chunk_key(&ContentHash::from_hex(id).unwrap()))
        .collect();
    let stored = s.vectors.as_ref().unwrap().vectors_of(&keys);
    assert!(
        stored.iter().all(Option::is_some),
        "every chunk has a vector"
    );
    let refs: Vec<Option<&[f32]>> = stored.iter().map(Option::as_deref).collect();
    let scores: Vec<f32> = fused.iter().map(|(_, s)| *s).collect();
    mmr(&scores, &refs, lambda, fused.len())
        .into_iter()
        .map(|i| fused[i].0.clone())
        .collect()
}

#[test]
fn the_answer_is_mmr_over_the_fused_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), true);
    let s = engine.searcher("c").unwrap();
    for mode in [Mode::Hybrid, Mode::Bm25, Mode::Vector] {
        let fused = ranked(&s, &query(100, mode, None));
        assert!(fused.len() >= 6, "{mode:?}: {fused:?}");
        // λ = 1 is the fused answer, scores included
        assert_eq!(ranked(&s, &query(100, mode, Some(1.0))), fused, "{mode:?}");
        for lambda in [0.0, 0.3, 0.5, 0.7, 0.9] {
            let want = oracle(&s, &fused, lambda);
            for top_k in [3, 100] {
                let got: Vec<String> = ranked(&s, &query(top_k, mode, Some(lambda)))
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                assert_eq!(got, want[..top_k.min(want.len())], "{mode:?} λ {lambda}");
            }
        }
    }
    // the anagrams fill the fused top 3; with λ = 0.2 the second hit is not one of them
    let fused = ranked(&s, &query(3, Mode::Hybrid, None));
    let anagrams: Vec<String> = fused.iter().map(|(id, _)| id.clone()).collect();
    let diverse = ranked(&s, &query(3, Mode::Hybrid, Some(0.2)));
    assert_eq!(diverse[0].0, anagrams[0]);
    assert!(
        !anagrams.contains(&diverse[1].0),
        "{diverse:?} vs {fused:?}"
    );
    // paging is over the diversified order
    let page = QueryOptions {
        offset: 1,
        top_k: 2,
        ..query(3, Mode::Hybrid, Some(0.2))
    };
    assert_eq!(ranked(&s, &page), diverse[1..]);
}

#[test]
fn grouping_and_min_score_still_hold() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), true);
    // a long document of many chunks, each about apple pie
    put(
        &engine,
        "c",
        "long",
        &"apple pie recipe with cream. apple pie recipe without cream. ".repeat(6),
    );
    let s = engine.searcher("c").unwrap();
    let by_document = |lambda: f32| QueryOptions {
        group_by: GroupBy::Document,
        ..query(5, Mode::Hybrid, Some(lambda))
    };
    for lambda in [0.0, 0.5, 1.0] {
        let answer = s
            .search(&by_document(lambda), &Principal::local_admin())
            .unwrap();
        let mut docs: Vec<&str> = answer.results.iter().map(|h| h.doc_id.as_str()).collect();
        assert_eq!(docs.len(), 5, "λ {lambda}");
        docs.sort_unstable();
        docs.dedup();
        assert_eq!(docs.len(), 5, "one hit per document, λ {lambda}");
    }
    // min_score: the same hits as without diversity (fewer than 100 pass), in another order
    let fused = ranked(&s, &query(100, Mode::Hybrid, None));
    let threshold = fused[4].1;
    let with_min = |lambda: Option<f32>| {
        let q = query(100, Mode::Hybrid, lambda)
            .with_page(0, Some(threshold))
            .unwrap();
        let mut ids: Vec<String> = ranked(&s, &q).into_iter().map(|(id, _)| id).collect();
        ids.sort_unstable();
        ids
    };
    let plain = with_min(None);
    assert!(plain.len() >= 5 && plain.len() < fused.len(), "{plain:?}");
    assert_eq!(with_min(Some(0.2)), plain);
}

#[test]
fn without_vectors_the_answer_is_fused_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), false);
    let s = engine.searcher("c").unwrap();
    let admin = Principal::local_admin();
    let plain = s.search(&query(5, Mode::Bm25, None), &admin).unwrap();
    let diverse = s.search(&query(5, Mode::Bm25, Some(0.5)), &admin).unwrap();
    assert_eq!(diverse.results, plain.results);
    assert!(plain.warnings.is_empty());
    assert_eq!(diverse.warnings.len(), 1, "{:?}", diverse.warnings);
    assert!(diverse.warnings[0].starts_with("diversify:"));
}

/// At most `MAX_CANDIDATES` candidates are re-ranked, however deep the page (MMR is quadratic
/// in them): with λ = 1 and scores rising along the list, the first `MAX_CANDIDATES` come out
/// best first and those past them keep their place.
#[test]
fn at_most_max_candidates_are_reranked() {
    use quarry_core::diversity::MAX_CANDIDATES;
    let dir = tempfile::tempdir().unwrap();
    let index =
        crate::vectors::VectorIndex::empty(dir.path(), 4, crate::vectors::VectorParams::default())
            .unwrap();
    let n = MAX_CANDIDATES + 500;
    let mut candidates: Vec<(u64, f32)> = (0..n).map(|i| (i as u64, i as f32)).collect();
    let lambda = Diversify { lambda: 1.0 };
    super::rerank(&mut candidates, |c| *c, lambda, n, None, &index.snapshot());
    let want: Vec<u64> = (0..MAX_CANDIDATES as u64)
        .rev()
        .chain(MAX_CANDIDATES as u64..n as u64)
        .collect();
    assert_eq!(candidates.iter().map(|c| c.0).collect::<Vec<_>>(), want);
}

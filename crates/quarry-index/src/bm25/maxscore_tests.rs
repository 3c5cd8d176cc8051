//! The pruned top-k of [`Bm25UnionQuery`] against the oracle: every chunk scored by tantivy's
//! unpruned union of the same terms, over random corpora (several segments, deleted chunks),
//! random queries, parameters, query weights, filters and `k`.

use super::*;
use quarry_core::Bm25Params;
use std::collections::HashMap;
use tantivy::collector::TopDocs;
use tantivy::schema::{Schema, TEXT};
use tantivy::{DocAddress, Index, IndexWriter, TantivyDocument};

thread_local! {
    /// Chunks the walk visited (found in an essential term's postings) on this thread.
    pub(super) static VISITED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// xorshift64*: the cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A word of a skewed vocabulary: word `i` about `1/(i+1)` as often as word 0.
    fn word(&mut self, vocabulary: usize) -> String {
        let x = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        let i = ((vocabulary as f64 + 1.0).powf(x) - 1.0) as usize;
        format!("w{}", i.min(vocabulary - 1))
    }
}

/// A corpus of `docs` chunks of 1 to 60 words and `every`, each in one of ten groups (the field `group`,
/// `g0` to `g9`), committed in a few segments, some chunks deleted.
fn corpus(rng: &mut Rng, docs: usize, vocabulary: usize) -> (Index, tantivy::schema::Field) {
    let mut b = Schema::builder();
    let text = b.add_text_field("text", TEXT);
    let id = b.add_u64_field("id", tantivy::schema::INDEXED);
    let group = b.add_text_field("group", tantivy::schema::STRING);
    let key = b.add_u64_field(super::super::CHUNK_KEY, tantivy::schema::FAST);
    let index = Index::create_in_ram(b.build());
    let mut writer: IndexWriter<TantivyDocument> = index.writer(15_000_000).unwrap();
    writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
    for n in 0..docs {
        let len = 1 + rng.below(60);
        let mut words: Vec<String> = (0..len).map(|_| rng.word(vocabulary)).collect();
        // a word of every chunk: its idf is near zero, its scores an ulp of a sum
        words.push("every".to_owned());
        let mut doc = TantivyDocument::default();
        doc.add_text(text, words.join(" "));
        doc.add_u64(id, n as u64);
        doc.add_text(group, format!("g{}", rng.below(10)));
        // unique keys in another order than the documents' (so ties ranked by key show)
        doc.add_u64(key, (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 8);
        writer.add_document(doc).unwrap();
        if n % (docs / 3) == docs / 3 - 1 {
            writer.commit().unwrap();
        }
    }
    writer.commit().unwrap();
    for _ in 0..docs / 20 {
        let n = rng.below(docs) as u64;
        writer.delete_term(Term::from_field_u64(id, n));
    }
    writer.commit().unwrap();
    (index, text)
}

/// Every live chunk's score by tantivy's unpruned union (`for_each`) and its chunk key, by
/// address.
fn every_score(
    searcher: &tantivy::Searcher,
    query: &Bm25UnionQuery,
) -> HashMap<DocAddress, (Score, u64)> {
    let weight = query
        .weight(EnableScoring::enabled_from_searcher(searcher))
        .unwrap();
    let mut all = HashMap::new();
    for (ord, reader) in searcher.segment_readers().iter().enumerate() {
        let alive = reader.alive_bitset();
        let keys = reader.fast_fields().u64(super::super::CHUNK_KEY).unwrap();
        weight
            .for_each(reader, &mut |doc, score| {
                if alive.is_none_or(|a| a.is_alive(doc)) {
                    let key = keys.first(doc).unwrap();
                    all.insert(DocAddress::new(ord as u32, doc), (score, key));
                }
            })
            .unwrap();
    }
    all
}

#[test]
fn pruned_top_k_is_the_unpruned_one() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut pruned_cases = 0;
    for round in 0..12 {
        let vocabulary = [8, 50, 400][round % 3];
        // every fourth corpus spans several windows of the walk
        let docs = if round % 4 == 3 {
            9_000 + rng.below(4_000)
        } else {
            300 + rng.below(900)
        };
        let (index, field) = corpus(&mut rng, docs, vocabulary);
        let searcher = index.reader().unwrap().searcher();
        assert!(searcher.segment_readers().len() > 1, "several segments");
        for _ in 0..25 {
            let (k1, b) = [(1.2, 0.75), (2.0, 1.0), (0.0, 0.5), (0.9, 0.0)][rng.below(4)];
            let params = Bm25Params::new(k1, b, [0.0, 1.0, 8.0][rng.below(3)]).unwrap();
            let mut terms: Vec<Bm25TermQuery> = (0..1 + rng.below(6))
                .map(|_| {
                    let term = Term::from_field_text(field, &rng.word(vocabulary + 5));
                    let weight = params.query_weight(1 + rng.below(3) as u32);
                    Bm25TermQuery::new(term, params, weight)
                })
                .collect();
            if rng.below(3) == 0 {
                let weight = params.query_weight(1);
                terms.push(Bm25TermQuery::new(
                    Term::from_field_text(field, "every"),
                    params,
                    weight,
                ));
            }
            let mut query = Bm25UnionQuery::new(terms);
            let groups = rng.below(12);
            if groups < 10 {
                // restricted to `groups + 1` of the ten groups
                let group = index.schema().get_field("group").unwrap();
                let filter = tantivy::query::TermSetQuery::new(
                    (0..=groups).map(|g| Term::from_field_text(group, &format!("g{g}"))),
                );
                query = query.within(Box::new(filter));
            }
            let all = every_score(&searcher, &query);
            let mut by_key: Vec<(Score, u64)> = all.values().copied().collect();
            by_key.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let want: Vec<Score> = by_key.iter().map(|x| x.0).collect();
            for k in [1, 3, 10, 40] {
                let top = searcher
                    .search(&query, &TopDocs::with_limit(k).order_by_score())
                    .unwrap();
                let got: Vec<Score> = top.iter().map(|(s, _)| *s).collect();
                // the same scores, bit for bit, and each the chunk's own
                assert_eq!(got, want[..k.min(want.len())], "{params:?} k={k}");
                for (score, address) in &top {
                    assert_eq!(all.get(address).map(|x| x.0), Some(*score), "{address:?}");
                }
                // ties at the cut included: the best k by score, then by chunk key
                let weight = query
                    .weight(EnableScoring::enabled_from_searcher(&searcher))
                    .unwrap();
                let ranked =
                    super::super::search::top_by_score(&searcher, weight.as_ref(), k).unwrap();
                let ranked: Vec<(Score, u64)> =
                    ranked.iter().map(|(s, key, _)| (*s, *key)).collect();
                assert_eq!(ranked, by_key[..k.min(by_key.len())], "{params:?} k={k}");
                pruned_cases += usize::from(all.len() > k);
            }
        }
    }
    assert!(
        pruned_cases > 500,
        "{pruned_cases} cases with more matches than k"
    );
}

#[test]
fn pruning_visits_few_chunks_of_a_common_term() {
    // a rare term beside a common one: once the top holds k chunks with both, the common
    // term's chunks past the window are not visited
    let mut b = Schema::builder();
    let text = b.add_text_field("text", TEXT);
    let index = Index::create_in_ram(b.build());
    let mut writer: IndexWriter<TantivyDocument> = index.writer(15_000_000).unwrap();
    for n in 0..40_000 {
        let mut doc = TantivyDocument::default();
        doc.add_text(
            text,
            if n % 100 == 0 {
                "common rare"
            } else {
                "common filler words"
            },
        );
        writer.add_document(doc).unwrap();
    }
    writer.commit().unwrap();
    let searcher = index.reader().unwrap().searcher();
    let params = Bm25Params::new(1.2, 0.75, 0.0).unwrap();
    let query = Bm25UnionQuery::new(
        ["common", "rare"]
            .iter()
            .map(|w| Bm25TermQuery::new(Term::from_field_text(text, w), params, 1.0))
            .collect(),
    );
    VISITED.with(|v| v.set(0));
    let top = searcher
        .search(&query, &TopDocs::with_limit(5).order_by_score())
        .unwrap();
    assert_eq!(top.len(), 5);
    assert!(top.iter().all(|(_, a)| a.doc_id % 100 == 0), "{top:?}");
    // the common term's chunks in the first window (4,096), then the rare term's (359 more)
    let visited = VISITED.with(|v| v.get());
    assert!(visited < 5_000, "{visited} chunks visited of 40,000");
}

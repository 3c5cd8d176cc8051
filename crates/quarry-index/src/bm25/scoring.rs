//! BM25 with a collection's own `k1`, `b` and query-term weight ([`Bm25Params`]), scored over
//! tantivy's postings and fieldnorms: [`Bm25TermQuery`], its weight and its scorer.
//!
//! tantivy's `TermQuery` scores with `k1 = 1.2` and `b = 0.75` fixed in its `Bm25Weight`; the
//! only way to other values is a scorer of our own. This one reads the same things tantivy's
//! does: a term's postings with their frequencies, each chunk's fieldnorm (its token count, which
//! tantivy stores exactly up to 40 and rounded above), and the statistics of the
//! [`tantivy::query::EnableScoring`] it is built with (the snapshot's, or a caller's
//! `PermittedStats`), so the ACL rules of scoring hold unchanged. The length part
//! `k1·(1 − b + b·dl/avgdl)` is computed once per fieldnorm id (256 values), as tantivy does.
//!
//! tantivy's block-max WAND only prunes unions of its own `TermScorer`s; a union of these is
//! pruned by `super::maxscore` instead, from [`Bm25TermScorer::bound`].

use quarry_core::Bm25Params;
use quarry_core::bm25::idf;
use std::sync::Arc;
use tantivy::fieldnorm::FieldNormReader;
use tantivy::postings::{Postings, SegmentPostings};
use tantivy::query::{EmptyScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, Score, SegmentReader, TERMINATED, TantivyError, Term};

/// One term of a query scored by BM25 with `params`, its score multiplied by `query_weight`
/// (`Bm25Params::query_weight` of the term's count in the query).
#[derive(Debug, Clone)]
pub struct Bm25TermQuery {
    term: Term,
    params: Bm25Params,
    query_weight: f32,
}

impl Bm25TermQuery {
    pub fn new(term: Term, params: Bm25Params, query_weight: f32) -> Self {
        Bm25TermQuery {
            term,
            params,
            query_weight,
        }
    }

    /// The weight over the statistics of `scoring` (what [`Query::weight`] makes, unboxed).
    pub(super) fn term_weight(
        &self,
        scoring: EnableScoring<'_>,
    ) -> tantivy::Result<Bm25TermWeight> {
        Ok(match scoring {
            EnableScoring::Enabled {
                statistics_provider: stats,
                ..
            } => self.weight_from(
                stats.doc_freq(&self.term)?,
                stats.total_num_docs()?,
                stats.total_num_tokens(self.term.field())?,
            ),
            // not scored: every chunk of the postings scores the same
            EnableScoring::Disabled { .. } => self.weight_from(0, 0, 0),
        })
    }

    /// The weight with explicit statistics: `n` chunks hold the term, of `total` chunks holding
    /// `tokens` tokens in the term's field.
    fn weight_from(&self, n: u64, total: u64, tokens: u64) -> Bm25TermWeight {
        let avgdl = if total == 0 {
            1.0
        } else {
            tokens as f32 / total as f32
        };
        let mut norms = [0f32; 256];
        for (id, norm) in norms.iter_mut().enumerate() {
            let dl = FieldNormReader::id_to_fieldnorm(id as u8) as f32;
            *norm = self.params.length_norm(dl, avgdl);
        }
        Bm25TermWeight {
            term: self.term.clone(),
            params: self.params,
            idf: idf(n, total),
            query_weight: self.query_weight,
            norms: Arc::new(norms),
            avgdl,
        }
    }
}

impl Query for Bm25TermQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.term_weight(scoring)?))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        visitor(&self.term, false);
    }
}

/// [`Bm25TermQuery`] over one snapshot's statistics.
pub(super) struct Bm25TermWeight {
    term: Term,
    params: Bm25Params,
    idf: f32,
    query_weight: f32,
    /// `k1·(1 − b + b·dl/avgdl)` by fieldnorm id.
    norms: Arc<[f32; 256]>,
    avgdl: f32,
}

impl Bm25TermWeight {
    /// Whether [`Bm25TermScorer::bound`] bounds this term's scores: every length part and the
    /// scale are finite and not negative (so `tf·(k1 + 1) / (tf + norm) ≤ k1 + 1`).
    pub(super) fn bounded(&self) -> bool {
        let scale = self.idf * self.query_weight;
        self.params.k1 >= 0.0
            && scale.is_finite()
            && scale >= 0.0
            && self.norms.iter().all(|n| n.is_finite() && *n >= 0.0)
    }

    pub(super) fn term_scorer(
        &self,
        reader: &SegmentReader,
        boost: Score,
    ) -> tantivy::Result<Option<Bm25TermScorer>> {
        let field = self.term.field();
        let inverted = reader.inverted_index(field)?;
        let Some(info) = inverted.get_term_info(&self.term)? else {
            return Ok(None);
        };
        let postings = inverted.read_postings_from_terminfo(&info, IndexRecordOption::WithFreqs)?;
        let fieldnorms = match reader.fieldnorms_readers().get_field(field)? {
            Some(norms) => norms,
            None => FieldNormReader::constant(reader.max_doc(), 1),
        };
        Ok(Some(Bm25TermScorer {
            postings,
            fieldnorms,
            params: self.params,
            scale: self.idf * self.query_weight * boost,
            norms: self.norms.clone(),
        }))
    }
}

impl Weight for Bm25TermWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(match self.term_scorer(reader, boost)? {
            Some(scorer) => Box::new(scorer),
            None => Box::new(EmptyScorer),
        })
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let not_found =
            || TantivyError::InvalidArgument(format!("chunk {doc} does not hold the term"));
        let mut scorer = self.term_scorer(reader, 1.0)?.ok_or_else(not_found)?;
        if scorer.seek(doc) != doc {
            return Err(not_found());
        }
        let tf = scorer.postings.term_freq() as f32;
        let dl = scorer.fieldnorms.fieldnorm(doc) as f32;
        let mut e = Explanation::new(
            "BM25: query weight · idf · tf·(k1 + 1) / (tf + k1·(1 − b + b·dl/avgdl))",
            scorer.score(),
        );
        e.add_const("query weight", self.query_weight);
        e.add_const("idf", self.idf);
        e.add_const("tf", tf);
        e.add_const("k1", self.params.k1);
        e.add_const("b", self.params.b);
        e.add_const("dl", dl);
        e.add_const("avgdl", self.avgdl);
        Ok(e)
    }
}

/// A term's postings in one segment, scored by [`Bm25TermWeight`].
pub(super) struct Bm25TermScorer {
    postings: SegmentPostings,
    fieldnorms: FieldNormReader,
    params: Bm25Params,
    /// idf × query weight × boost.
    scale: f32,
    norms: Arc<[f32; 256]>,
}

impl DocSet for Bm25TermScorer {
    fn advance(&mut self) -> DocId {
        self.postings.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.postings.doc() >= target {
            return self.postings.doc();
        }
        self.postings.seek(target)
    }

    fn doc(&self) -> DocId {
        self.postings.doc()
    }

    fn size_hint(&self) -> u32 {
        self.postings.size_hint()
    }
}

impl Bm25TermScorer {
    /// No chunk scores above this: `scale · (k1 + 1)`, the limit of the term-frequency factor
    /// (when [`Bm25TermWeight::bounded`]).
    pub(super) fn bound(&self) -> f32 {
        self.scale * (self.params.k1 + 1.0)
    }
}

impl Scorer for Bm25TermScorer {
    fn score(&mut self) -> Score {
        let doc = self.postings.doc();
        if doc == TERMINATED {
            return 0.0;
        }
        let norm = self.norms[self.fieldnorms.fieldnorm_id(doc) as usize];
        self.scale
            * self
                .params
                .tf_factor(self.postings.term_freq() as f32, norm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::TopDocs;
    use tantivy::schema::{Schema, TEXT};
    use tantivy::{Index, IndexWriter, TantivyDocument};

    /// Chunks of a few words (fieldnorms below 40 are exact), some repeating a word.
    const CORPUS: [&str; 6] = [
        "apple banana apple",
        "banana cherry",
        "apple apple apple cherry date elder fig grape",
        "date",
        "cherry banana apple fig fig",
        "grape grape elder",
    ];

    fn index() -> (Index, tantivy::schema::Field) {
        let mut b = Schema::builder();
        let text = b.add_text_field("text", TEXT);
        let index = Index::create_in_ram(b.build());
        let mut writer: IndexWriter<TantivyDocument> = index.writer(15_000_000).unwrap();
        for chunk in CORPUS {
            let mut doc = TantivyDocument::default();
            doc.add_text(text, chunk);
            writer.add_document(doc).unwrap();
        }
        writer.commit().unwrap();
        (index, text)
    }

    /// The oracle: BM25 of every chunk for `query` (words, repeated as the query repeats them),
    /// from the formula over the corpus as written.
    fn oracle(query: &[(&str, u32)], p: Bm25Params) -> Vec<f32> {
        let chunks: Vec<Vec<&str>> = CORPUS.iter().map(|c| c.split(' ').collect()).collect();
        let n_docs = chunks.len() as f64;
        let avgdl = chunks.iter().map(|c| c.len()).sum::<usize>() as f64 / n_docs;
        chunks
            .iter()
            .map(|c| {
                let dl = c.len() as f64;
                let mut score = 0f64;
                for (word, qtf) in query {
                    let tf = c.iter().filter(|w| *w == word).count() as f64;
                    if tf == 0.0 {
                        continue;
                    }
                    let n = chunks.iter().filter(|c| c.contains(word)).count() as f64;
                    let idf = (1.0 + (n_docs - n + 0.5) / (n + 0.5)).ln();
                    let (k1, b, k3) = (f64::from(p.k1), f64::from(p.b), f64::from(p.k3));
                    let qw = f64::from(*qtf) * (k3 + 1.0) / (k3 + f64::from(*qtf));
                    score += qw * idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * dl / avgdl));
                }
                score as f32
            })
            .collect()
    }

    fn scores(
        index: &Index,
        field: tantivy::schema::Field,
        query: &[(&str, u32)],
        p: Bm25Params,
    ) -> Vec<f32> {
        let terms: Vec<(Term, u32)> = query
            .iter()
            .map(|(w, n)| (Term::from_field_text(field, w), *n))
            .collect();
        let searcher = index.reader().unwrap().searcher();
        let clauses: Vec<(tantivy::query::Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|(t, n)| {
                let q = Bm25TermQuery::new(t.clone(), p, p.query_weight(*n));
                (tantivy::query::Occur::Should, Box::new(q) as Box<dyn Query>)
            })
            .collect();
        let q = tantivy::query::BooleanQuery::new(clauses);
        let hits = searcher
            .search(&q, &TopDocs::with_limit(100).order_by_score())
            .unwrap();
        let mut out = vec![0f32; CORPUS.len()];
        for (score, address) in hits {
            out[address.doc_id as usize] = score;
        }
        out
    }

    #[test]
    fn scores_equal_the_formula_for_every_parameter_set() {
        let (index, field) = index();
        let queries: [&[(&str, u32)]; 3] = [
            &[("apple", 1)],
            &[("apple", 2), ("fig", 1), ("date", 1)],
            &[("grape", 1), ("cherry", 3), ("banana", 1)],
        ];
        for (k1, b) in [
            (1.2, 0.75),
            (0.9, 0.4),
            (1.5, 0.0),
            (2.0, 1.0),
            (0.0, 0.5),
            (3.0, 0.3),
        ] {
            for k3 in [0.0, 1.0, 8.0, quarry_core::bm25::MAX_K] {
                let p = Bm25Params::new(k1, b, k3).unwrap();
                for q in queries {
                    let (got, want) = (scores(&index, field, q, p), oracle(q, p));
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() < 1e-4 * w.max(1.0),
                            "{p:?} {q:?}: {got:?} != {want:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn tantivys_parameters_score_as_tantivy_does() {
        let (index, field) = index();
        let searcher = index.reader().unwrap().searcher();
        for word in ["apple", "fig", "grape"] {
            let term = Term::from_field_text(field, word);
            let theirs = tantivy::query::TermQuery::new(term.clone(), IndexRecordOption::WithFreqs);
            let tantivys = Bm25Params::new(1.2, 0.75, 0.0).unwrap();
            let ours = Bm25TermQuery::new(term, tantivys, 1.0);
            let top = TopDocs::with_limit(10).order_by_score();
            let a = searcher.search(&theirs, &top).unwrap();
            let b = searcher.search(&ours, &top).unwrap();
            assert_eq!(a.len(), b.len());
            for ((sa, da), (sb, db)) in a.iter().zip(&b) {
                assert_eq!(da, db);
                assert!((sa - sb).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn explain_names_the_parameters() {
        let (index, field) = index();
        let searcher = index.reader().unwrap().searcher();
        let p = Bm25Params::new(0.9, 0.4, 0.0).unwrap();
        let q = Bm25TermQuery::new(Term::from_field_text(field, "apple"), p, 1.0);
        let e = q
            .explain(&searcher, tantivy::DocAddress::new(0, 0))
            .unwrap();
        let want = oracle(&[("apple", 1)], p)[0];
        assert!((e.value() - want).abs() < 1e-5);
        assert!(e.to_pretty_json().contains("\"k1\""));
        assert!(
            q.explain(&searcher, tantivy::DocAddress::new(0, 1))
                .is_err()
        );
    }
}

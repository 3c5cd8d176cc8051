//! A query's terms as one union ([`Bm25UnionQuery`]) whose top-k is pruned by MaxScore (Turtle
//! and Flood, 1995): tantivy's block-max WAND prunes only unions of its own `TermScorer`s, and
//! ours ([`Bm25TermQuery`], for the collection's `k1` and `b`) are not, so before this every
//! query scored every posting of every term (at a million chunks a hybrid query of three common
//! words took 44 ms of server time).
//!
//! No chunk scores more on a term than `idf · query weight · (k1 + 1)` (the limit of the
//! term-frequency factor), so once `TopDocs` holds `k` chunks, the terms whose bounds add up to no
//! more than its threshold cannot lift a chunk into the top on their own. Only the postings of
//! the other ("essential") terms are walked, a window of [`WINDOW`] chunks at a time with their
//! scores added into a buffer (as tantivy's own union does); each chunk found then looks the
//! non-essential terms up (`seek`), largest bound first, while it can still pass the threshold.
//! As the threshold rises, more terms fall out of the essential set; a query whose rarest term is
//! rare walks little more than that term's postings. Lucene's `MaxScoreBulkScorer` works the
//! same way.
//!
//! The scores reported are the union's own: a chunk that passes is scored again from a second
//! cursor per term, term by term in the query's order from zero, as tantivy's union adds them,
//! so the pruned top-k is the unpruned one bit for bit (the property test compares them).
//! Everything but `for_each_pruning` (scorers, counts, explanations, facets) is tantivy's
//! `BooleanQuery` of the same terms.

use super::scoring::{Bm25TermQuery, Bm25TermScorer, Bm25TermWeight};
use tantivy::query::{
    BooleanQuery, ConstScoreQuery, EnableScoring, Explanation, Occur, Query, Scorer, Weight,
};
use tantivy::{DocId, DocSet, Score, SegmentReader, TERMINATED, Term};

/// Most terms a query prunes with: a longer one (a feedback expansion of hundreds of words) runs
/// tantivy's unpruned union, as its many small bounds add up past any threshold and pruning
/// would only add the lookups.
const MAX_PRUNED_TERMS: usize = 64;

/// Bounds (and bounds with partial scores) are inflated by this factor before they are compared
/// with a threshold: they are added in other orders than the reported score, and a chunk must
/// not be skipped by a rounding error (`top_by_score` hands back a threshold one ulp below a
/// score, so that chunks tying with it arrive).
const SLACK: f32 = 1.001;

/// The `SHOULD` union of BM25 terms, each its own [`Bm25TermQuery`] (term, parameters, query
/// weight), in order; with [`Bm25UnionQuery::within`], only over the chunks a filter matches
/// (scores unchanged, as [`restrict`] does it).
#[derive(Debug)]
pub(super) struct Bm25UnionQuery {
    terms: Vec<Bm25TermQuery>,
    filter: Option<Box<dyn Query>>,
}

impl Clone for Bm25UnionQuery {
    fn clone(&self) -> Self {
        Bm25UnionQuery {
            terms: self.terms.clone(),
            filter: self.filter.as_ref().map(|f| f.box_clone()),
        }
    }
}

impl Bm25UnionQuery {
    pub(super) fn new(terms: Vec<Bm25TermQuery>) -> Self {
        Bm25UnionQuery {
            terms,
            filter: None,
        }
    }

    /// This query over the chunks `filter` matches only.
    pub(super) fn within(mut self, filter: Box<dyn Query>) -> Self {
        self.filter = Some(filter);
        self
    }

    /// tantivy's union of the same terms (restricted like this query).
    fn unpruned(&self) -> Box<dyn Query> {
        let union = Box::new(BooleanQuery::new(
            self.terms
                .iter()
                .map(|t| (Occur::Should, Box::new(t.clone()) as Box<dyn Query>))
                .collect(),
        ));
        match &self.filter {
            Some(f) => restrict(union, f.box_clone()),
            None => union,
        }
    }
}

impl Query for Bm25UnionQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let terms = self
            .terms
            .iter()
            .map(|t| t.term_weight(scoring))
            .collect::<tantivy::Result<Vec<_>>>()?;
        let filter = match &self.filter {
            Some(f) => Some(f.weight(scoring)?),
            None => None,
        };
        Ok(Box::new(Bm25UnionWeight {
            union: self.unpruned().weight(scoring)?,
            terms,
            filter,
        }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        for t in &self.terms {
            t.query_terms(visitor);
        }
    }
}

struct Bm25UnionWeight {
    /// tantivy's union of the same terms (restricted): what everything but the pruned top-k
    /// runs.
    union: Box<dyn Weight>,
    terms: Vec<Bm25TermWeight>,
    filter: Option<Box<dyn Weight>>,
}

impl Weight for Bm25UnionWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        self.union.scorer(reader, boost)
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.union.explain(reader, doc)
    }

    fn count(&self, reader: &SegmentReader) -> tantivy::Result<u32> {
        self.union.count(reader)
    }

    fn for_each(
        &self,
        reader: &SegmentReader,
        callback: &mut dyn FnMut(DocId, Score),
    ) -> tantivy::Result<()> {
        self.union.for_each(reader, callback)
    }

    fn for_each_no_score(
        &self,
        reader: &SegmentReader,
        callback: &mut dyn FnMut(&[DocId]),
    ) -> tantivy::Result<()> {
        self.union.for_each_no_score(reader, callback)
    }

    fn for_each_pruning(
        &self,
        threshold: Score,
        reader: &SegmentReader,
        callback: &mut dyn FnMut(DocId, Score) -> Score,
    ) -> tantivy::Result<()> {
        if self.terms.len() > MAX_PRUNED_TERMS || !self.terms.iter().all(|t| t.bounded()) {
            return self.union.for_each_pruning(threshold, reader, callback);
        }
        let mut cursors = Vec::with_capacity(self.terms.len());
        let mut exact = Vec::with_capacity(self.terms.len());
        for weight in &self.terms {
            if let Some(scorer) = weight.term_scorer(reader, 1.0)? {
                cursors.push(Cursor {
                    bound: scorer.bound(),
                    scorer,
                });
            }
            exact.push(weight.term_scorer(reader, 1.0)?);
        }
        let filter = match &self.filter {
            Some(f) => Some(f.scorer(reader, 1.0)?),
            None => None,
        };
        let mut walk = Walk {
            exact,
            filter,
            callback,
        };
        walk.run(cursors, threshold);
        Ok(())
    }
}

/// One term's postings in the walk, with its score bound.
struct Cursor {
    scorer: Bm25TermScorer,
    bound: f32,
}

/// Docs a window of the walk covers: the essential terms' postings in it are added up at once.
const WINDOW: u32 = 4096;

/// One segment's pruned walk.
struct Walk<'a> {
    /// A second scorer of each term (`None`: not in the segment), in the query's order, moved
    /// forward only to the chunks reported, for their scores as the union adds them.
    exact: Vec<Option<Bm25TermScorer>>,
    /// The chunks the query may return, when restricted.
    filter: Option<Box<dyn Scorer>>,
    callback: &'a mut dyn FnMut(DocId, Score) -> Score,
}

impl Walk<'_> {
    /// Calls the callback with every chunk whose score (the union's, see the module doc)
    /// exceeds the threshold the callback last returned (at first `threshold`), skipping chunks
    /// that cannot.
    fn run(&mut self, mut cursors: Vec<Cursor>, mut threshold: Score) {
        cursors.sort_by(|a, b| a.bound.total_cmp(&b.bound));
        // below[i]: the bounds of cursors[..=i] added, inflated
        let mut below = Vec::with_capacity(cursors.len());
        let mut sum = 0f32;
        for c in &cursors {
            sum += c.bound;
            below.push(sum * SLACK);
        }
        // cursors[..essential] cannot pass the threshold together: not walked, looked up
        let first_essential =
            |threshold: Score| below.iter().take_while(|b| **b <= threshold).count();
        let mut sums = vec![0f32; WINDOW as usize];
        let mut seen = vec![0u64; WINDOW as usize / 64];
        loop {
            let essential = first_essential(threshold);
            let Some(start) = (cursors[essential..].iter().map(|c| c.scorer.doc()).min())
                .filter(|d| *d != TERMINATED)
            else {
                break;
            };
            let end = start.saturating_add(WINDOW);
            for c in &mut cursors[essential..] {
                let mut doc = c.scorer.doc();
                while doc < end {
                    let at = (doc - start) as usize;
                    seen[at / 64] |= 1 << (at % 64);
                    sums[at] += c.scorer.score();
                    doc = c.scorer.advance();
                }
            }
            for (word, bits) in seen.iter_mut().enumerate() {
                let mut bits = std::mem::take(bits);
                while bits != 0 {
                    let at = word * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let partial = std::mem::take(&mut sums[at]);
                    let doc = start + at as u32;
                    #[cfg(test)]
                    tests::VISITED.with(|v| v.set(v.get() + 1));
                    if let Some(score) =
                        self.candidate(&mut cursors[..essential], &below, doc, partial, threshold)
                    {
                        // never lowered: a term left out of the walk has only been moved to
                        // the chunks looked up, and would visit chunks again
                        threshold = threshold.max((self.callback)(doc, score));
                    }
                }
            }
        }
    }

    /// The union's score of `doc`, whose essential terms add up to `partial`, when it may pass
    /// `threshold`: permitted, and with the non-essential terms (`cursors`, their added bounds
    /// `below`) looked up while the chunk can still pass.
    fn candidate(
        &mut self,
        cursors: &mut [Cursor],
        below: &[f32],
        doc: DocId,
        mut partial: f32,
        threshold: Score,
    ) -> Option<Score> {
        if let Some(f) = &mut self.filter {
            if f.doc() < doc {
                f.seek(doc);
            }
            if f.doc() != doc {
                return None;
            }
        }
        for i in (0..cursors.len()).rev() {
            if (partial + below[i]) * SLACK <= threshold {
                return None;
            }
            let s = &mut cursors[i].scorer;
            if s.doc() < doc {
                s.seek(doc);
            }
            if s.doc() == doc {
                partial += s.score();
            }
        }
        if partial * SLACK <= threshold {
            return None;
        }
        // the union's sum: term by term in the query's order, from zero
        let mut score = 0f32;
        for s in self.exact.iter_mut().flatten() {
            if s.doc() < doc {
                s.seek(doc);
            }
            if s.doc() == doc {
                score += s.score();
            }
        }
        (score > threshold).then_some(score)
    }
}

/// `query` restricted to the documents of `filter`, with the scores of `query` unchanged: the
/// filter is a required clause scoring 0 inside the same query, so BM25 ranks only permitted
/// chunks and fills `top_k` with them. (tantivy's intersection adds the clause's 0 to the
/// score, which leaves it as it was.)
pub fn restrict(query: Box<dyn Query>, filter: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, query),
        (Occur::Must, Box::new(ConstScoreQuery::new(filter, 0.0))),
    ]))
}

#[cfg(test)]
#[path = "maxscore_tests.rs"]
mod tests;

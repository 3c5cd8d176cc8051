//! BM25 retrieval over a snapshot of a collection's index: a caller's query prepared once
//! ([`Bm25Query`]: its terms, and its tantivy weight with the caller's ACL clause, scored by the
//! statistics of the chunks the caller may read, restricted by a metadata filter), its best chunks with equal scores ordered by
//! chunk key ([`top_by_score`]), the keys of the chunks the caller may read, and the BM25 score
//! of given chunks term by term (for a weighted fusion's vector-only candidates).

use super::feedback::feedback_terms;
use super::permitted::PermittedQuery;
use super::stats::live_matches;
use super::{
    Bm25Index, CHUNK_KEY, KeyMap, PermittedStats, SegmentColumns, build_weighted, filter_query,
    query_terms,
};
use crate::catalog::Occurrence;
use crate::error::Result;
use quarry_core::{Bm25Params, Feedback, Filter};
use std::sync::Arc;
use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query, Scorer, Weight};
use tantivy::{DocAddress, DocSet};

/// One caller's BM25 query over one snapshot, prepared once and used at every depth.
pub(crate) struct Bm25Query<'a> {
    snapshot: &'a tantivy::Searcher,
    /// The terms of the query with their counts in it; none when the text has no searchable term.
    terms: Vec<(tantivy::Term, u32)>,
    /// How its terms are scored (the collection's setting).
    params: Bm25Params,
    /// The terms scored, with their query weights: `terms` weighted by `k3`, and after
    /// [`Bm25Query::expand`] the feedback's terms too.
    scored: Vec<(tantivy::Term, f32)>,
    /// The words of an expanded query with their weights (the original ones first) and how many
    /// are the original ones; `None` when the query was not expanded.
    expansion: Option<(Vec<(String, f32)>, usize)>,
    /// The query's weight over the snapshot (its terms looked up and their statistics read once,
    /// the caller's ACL clause included); `None` without terms or when not scored.
    weight: Option<Box<dyn Weight>>,
    /// With `acl_only`, the same query without the ACL clause (same statistics), for
    /// [`Bm25Query::top`]'s oversampled search.
    open: Option<Box<dyn Weight>>,
    /// The chunks this query may return: the caller's ACL and the query's metadata filter
    /// (`super::meta`); `None` when neither restricts.
    clause: Option<Box<dyn Query>>,
    /// The caller's permitted chunks when its ACL is the whole restriction (no metadata
    /// filter): [`Bm25Query::permitted`] without a pass over the index.
    acl_only: Option<Arc<Vec<tantivy::BitSet>>>,
    /// BM25 statistics of the chunks the caller may read; `None` for a caller who sees
    /// everything (the snapshot's own), or without terms or scoring.
    stats: Option<PermittedStats<'a>>,
}

impl<'a> Bm25Query<'a> {
    /// `text` over `snapshot` of `index`, for a caller with ACL `tokens` (`None`: sees
    /// everything), restricted to the chunks that may pass `filter`. `scored`: false when BM25
    /// does not retrieve (`mode=vector`): no weight and no statistics are made, only the
    /// restriction is kept. Scores are those of the caller's ACL alone: a filter selects, it does
    /// not change how a chunk scores.
    pub(crate) fn new(
        index: &'a Bm25Index,
        snapshot: &'a tantivy::Searcher,
        text: &str,
        tokens: Option<Vec<String>>,
        filter: Option<&Filter>,
        scored: bool,
        params: Bm25Params,
    ) -> Result<Self> {
        let fields = index.fields();
        let acl_sets = match &tokens {
            Some(t) => Some(index.totals_cache().permitted(snapshot, &fields, t)?),
            None => None,
        };
        let acl = acl_sets
            .as_ref()
            .map(|sets| Box::new(PermittedQuery::new(snapshot, sets.clone())) as Box<dyn Query>);
        let clause = match (acl, filter.map(|f| filter_query(&fields, f))) {
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => Some(one),
            (Some(a), Some(f)) => {
                Some(
                    Box::new(BooleanQuery::new(vec![(Occur::Must, a), (Occur::Must, f)]))
                        as Box<dyn Query>,
                )
            }
        };
        let terms = query_terms(&fields, text);
        let stats = match (&tokens, &acl_sets) {
            (Some(t), Some(sets)) if scored && !terms.is_empty() => Some(PermittedStats::new(
                snapshot,
                fields,
                t.clone(),
                sets.clone(),
                index.totals_cache(),
            )),
            _ => None,
        };
        let acl_only = acl_sets.filter(|_| filter.is_none());
        let scored_terms = terms
            .iter()
            .map(|(t, n)| (t.clone(), params.query_weight(*n)))
            .collect();
        let mut query = Bm25Query {
            snapshot,
            terms,
            params,
            scored: scored_terms,
            expansion: None,
            weight: None,
            open: None,
            clause,
            acl_only,
            stats,
        };
        if scored {
            query.prepare()?;
        }
        Ok(query)
    }

    /// Makes the query's weights from `scored`.
    fn prepare(&mut self) -> Result<()> {
        let within = self.clause.as_ref().map(|c| c.box_clone());
        if let Some(q) = build_weighted(&self.scored, self.params, within) {
            if self.acl_only.is_some()
                && let Some(open) = build_weighted(&self.scored, self.params, None)
            {
                self.open = Some(open.weight(self.scoring())?);
            }
            self.weight = Some(q.weight(self.scoring())?);
        }
        Ok(())
    }

    /// Expands the query by pseudo-relevance feedback ([`quarry_core::feedback`]): its best
    /// `fb.fb_docs` chunks among those it may return (the caller's ACL and the filter hold) are
    /// the feedback, `admits` says which of a feedback chunk's documents may lend their title.
    /// Nothing changes when `fb` does not expand, the query is not scored or finds nothing.
    /// The words searched for facets and highlights stay the query's own.
    pub(crate) fn expand(
        &mut self,
        index: &Bm25Index,
        fb: Feedback,
        admits: &dyn Fn(&Occurrence) -> bool,
    ) -> Result<()> {
        if !fb.expands() || self.weight.is_none() {
            return Ok(());
        }
        // Twice as many, since a chunk whose documents all fail the filter (a chunk several
        // documents share matches by its shared mark) is left out.
        let top = self.top(fb.fb_docs.saturating_mul(2))?;
        let feedback = feedback_terms(index, self.snapshot, &top, admits, fb.fb_docs)?;
        if feedback.is_empty() {
            return Ok(());
        }
        let original: Vec<(String, f32)> = self
            .scored
            .iter()
            .map(|(t, w)| (t.value().as_str().unwrap_or_default().to_owned(), *w))
            .collect();
        let weights = quarry_core::feedback::expansion_weights(&original, &feedback, fb);
        let field = index.fields().context;
        self.scored = weights
            .iter()
            .map(|(t, w)| (tantivy::Term::from_field_text(field, t), *w))
            .collect();
        self.expansion = Some((weights, original.len()));
        self.prepare()
    }

    /// The words of the expanded query with their weights (the query's own first) and how many
    /// are the query's own, when [`Bm25Query::expand`] expanded it.
    pub(crate) fn expansion(&self) -> Option<(&[(String, f32)], usize)> {
        self.expansion.as_ref().map(|(w, n)| (w.as_slice(), *n))
    }

    /// Whether the text had no searchable term (only stop words or punctuation).
    pub(crate) fn has_no_terms(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether the caller's ACL or a filter restricts the chunks this query may return.
    pub(crate) fn restricted(&self) -> bool {
        self.clause.is_some()
    }

    /// The restriction of [`Bm25Query::restricted`], if any.
    pub(crate) fn clause(&self) -> Option<&dyn Query> {
        self.clause.as_deref()
    }

    /// The query's terms and their counts in it.
    pub(crate) fn terms(&self) -> &[(tantivy::Term, u32)] {
        &self.terms
    }

    /// How the query's terms are scored.
    pub(crate) fn params(&self) -> Bm25Params {
        self.params
    }

    /// How this caller's BM25 scores are computed: over the chunks it may read.
    fn scoring(&self) -> EnableScoring<'_> {
        match &self.stats {
            Some(stats) => EnableScoring::enabled_from_statistics_provider(stats, self.snapshot),
            None => EnableScoring::enabled_from_searcher(self.snapshot),
        }
    }

    /// The best `limit` chunks by BM25 among those the caller may see, best first, as `(score,
    /// chunk key, address)`.
    ///
    /// Restricted by an ACL alone, the query first runs without it (same statistics, so the same
    /// scores) for enough hits that about [`OVERSAMPLE`] × `limit` of them are expected to be
    /// permitted, and keeps those that are: when `limit` are (or the query matched fewer chunks
    /// than it asked for), they are the permitted best, as any better permitted chunk would be
    /// among those hits. Otherwise (a
    /// small permitted fraction, too few permitted among the hits, or a metadata filter) the ACL
    /// is a clause of the query itself. Equal scores are ordered by chunk key, so the answer
    /// does not depend on where tantivy put the chunks (two identical ingests, or a rebuild,
    /// rank alike); see [`top_by_score`].
    pub(crate) fn top(&self, limit: usize) -> Result<Vec<(f32, u64, DocAddress)>> {
        Ok(self.top_by(limit)?.0)
    }

    /// [`Bm25Query::top`], and which way it went.
    pub(crate) fn top_by(&self, limit: usize) -> Result<(Ranked, TopPath)> {
        let Some(weight) = &self.weight else {
            return Ok((Vec::new(), TopPath::Restricted));
        };
        let limit = limit.max(1);
        if let (Some(sets), Some(open)) = (&self.acl_only, &self.open) {
            let permitted: u64 = sets.iter().map(|s| s.len() as u64).sum();
            let total = self.snapshot.num_docs();
            if permitted >= total {
                let hits = top_by_score(self.snapshot, open.as_ref(), limit)?;
                return Ok((hits, TopPath::Everything));
            }
            let wide = OVERSAMPLE * limit as f64 * total as f64 / permitted.max(1) as f64;
            if wide <= MAX_OVERSAMPLED as f64 {
                let wide = wide.ceil() as usize;
                let mut hits = top_by_score(self.snapshot, open.as_ref(), wide)?;
                let complete = hits.len() < wide;
                hits.retain(|(_, _, a)| {
                    sets.get(a.segment_ord as usize)
                        .is_some_and(|s| a.doc_id < s.max_value() && s.contains(a.doc_id))
                });
                if complete || hits.len() >= limit {
                    hits.truncate(limit);
                    return Ok((hits, TopPath::Oversampled));
                }
            }
        }
        Ok((
            top_by_score(self.snapshot, weight.as_ref(), limit)?,
            TopPath::Restricted,
        ))
    }

    /// The restricted query's own best `limit` (what [`Bm25Query::top`]'s shortcuts must equal).
    #[cfg(test)]
    pub(crate) fn top_restricted(&self, limit: usize) -> Result<Ranked> {
        match &self.weight {
            Some(weight) => top_by_score(self.snapshot, weight.as_ref(), limit.max(1)),
            None => Ok(Vec::new()),
        }
    }

    /// The chunks of the snapshot this query may return (every chunk when nothing restricts
    /// it), as a bitset of each segment's live documents.
    pub(crate) fn permitted(&self) -> Result<PermittedSets> {
        let sets = match (&self.acl_only, &self.clause) {
            (Some(sets), _) => sets.clone(),
            (None, Some(clause)) => Arc::new(live_matches(self.snapshot, clause.as_ref())?),
            (None, None) => Arc::new(live_matches(self.snapshot, &tantivy::query::AllQuery)?),
        };
        let count = sets.iter().map(|s| s.len()).sum();
        Ok(PermittedSets {
            sets,
            count,
            total: self.snapshot.num_docs() as usize,
        })
    }

    /// The BM25 score of each of `chunks` `(chunk key, address)` that holds a term of the query,
    /// as the sum of its terms' scores (the ACL clause scores 0, and the chunks are the caller's
    /// own). Each term's postings skip to the chunks; the query's own union scorer would score
    /// every posting in between. Sorts `chunks` by address.
    pub(crate) fn score_chunks(&self, chunks: &mut [(u64, DocAddress)]) -> Result<Vec<(u64, f32)>> {
        let mut out = Vec::new();
        if chunks.is_empty() {
            return Ok(out);
        }
        let scoring = self.scoring();
        let weights = self
            .scored
            .iter()
            .map(|(t, w)| super::Bm25TermQuery::new(t.clone(), self.params, *w).weight(scoring))
            .collect::<tantivy::Result<Vec<_>>>()?;
        chunks.sort_by_key(|(_, a)| (a.segment_ord, a.doc_id));
        for segment in chunks.chunk_by(|x, y| x.1.segment_ord == y.1.segment_ord) {
            let reader = self.snapshot.segment_reader(segment[0].1.segment_ord);
            let mut scores = vec![None::<f32>; segment.len()];
            for weight in &weights {
                let mut scorer = weight.scorer(reader, 1.0)?;
                for ((_, address), score) in segment.iter().zip(&mut scores) {
                    if scorer.doc() < address.doc_id {
                        scorer.seek(address.doc_id);
                    }
                    if scorer.doc() == address.doc_id {
                        *score = Some(score.unwrap_or(0.0) + scorer.score());
                    }
                }
            }
            out.extend(
                segment
                    .iter()
                    .zip(scores)
                    .filter_map(|((key, _), score)| score.map(|s| (*key, s))),
            );
        }
        Ok(out)
    }
}

/// How [`Bm25Query::top`] found its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopPath {
    /// The caller may read every chunk: the query without its ACL.
    Everything,
    /// The query without its ACL, oversampled and filtered.
    Oversampled,
    /// The query with its restriction as a clause.
    Restricted,
}

/// How many more hits than asked for, over the permitted fraction, an ACL-restricted query
/// first takes unrestricted ([`Bm25Query::top`]).
const OVERSAMPLE: f64 = 2.0;
/// The most hits that oversampled search takes; past it (a small permitted fraction) the
/// restricted query runs at once. At a million chunks (`quarry bench scale`, 100 hits asked),
/// 2,000 unrestricted hits for a caller reading 10 % took longer than the restricted query
/// (BM25 p50 7.8 against 4.5 ms), 400 for one reading half took less (4.7 against 7.5 ms).
const MAX_OVERSAMPLED: usize = 1024;

/// Hits as `(score, chunk key, address)`.
type Ranked = Vec<(f32, u64, DocAddress)>;

/// The best `limit` documents of `snapshot` for `weight`, as `(score, chunk key, address)`,
/// by score and then by chunk key, so that the answer does not depend on where tantivy put
/// documents of equal score. One pruned pass a segment (`Weight::for_each_pruning`, which
/// `super::maxscore` prunes): the threshold handed back is just below the `limit`-th best score,
/// so chunks tying with it still arrive and are ordered by key. (tantivy's `TopDocs` hands back
/// the score itself and keeps the first of equal scores it meets; a second, unpruned pass ranked
/// ties before this.)
pub(crate) fn top_by_score(
    snapshot: &tantivy::Searcher,
    weight: &dyn tantivy::query::Weight,
    limit: usize,
) -> Result<Ranked> {
    /// A hit in the heap: worse hits are greater, so the heap's top is the worst kept.
    #[derive(PartialEq)]
    struct Worst(f32, u64, tantivy::DocId);
    impl Eq for Worst {}
    impl PartialOrd for Worst {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Worst {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            (other.0.total_cmp(&self.0)).then(self.1.cmp(&other.1))
        }
    }
    let mut all = Vec::new();
    if limit == 0 {
        return Ok(all);
    }
    for (ord, reader) in snapshot.segment_readers().iter().enumerate() {
        let keys = reader.fast_fields().u64(CHUNK_KEY)?;
        let alive = reader.alive_bitset();
        let mut kept = std::collections::BinaryHeap::<Worst>::with_capacity(limit + 1);
        let mut threshold = f32::MIN;
        weight.for_each_pruning(f32::MIN, reader, &mut |doc, score| {
            if alive.is_some_and(|a| a.is_deleted(doc)) {
                return threshold;
            }
            let Some(key) = keys.first(doc) else {
                return threshold;
            };
            kept.push(Worst(score, key, doc));
            if kept.len() > limit {
                kept.pop();
            }
            if kept.len() == limit
                && let Some(worst) = kept.peek()
            {
                threshold = worst.0.next_down();
            }
            threshold
        })?;
        all.extend(
            kept.into_iter()
                .map(|Worst(score, key, doc)| (score, key, DocAddress::new(ord as u32, doc))),
        );
    }
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    all.truncate(limit);
    Ok(all)
}

/// The chunks one query may return, as bitsets of each segment's live documents: what the
/// vector search asks about the points it reaches ([`Admitted`]).
pub(crate) struct PermittedSets {
    sets: Arc<Vec<tantivy::BitSet>>,
    count: usize,
    /// Live documents of the snapshot.
    total: usize,
}

impl PermittedSets {
    /// These sets as the vector search's [`crate::vectors::Permitted`], through the snapshot's
    /// key map (chunk key → address).
    pub(crate) fn admitted<'a>(
        &'a self,
        snapshot: &'a tantivy::Searcher,
        keys: &'a KeyMap,
    ) -> Admitted<'a> {
        Admitted {
            sets: self,
            snapshot,
            keys,
        }
    }
}

/// [`PermittedSets`] read by chunk key.
pub(crate) struct Admitted<'a> {
    sets: &'a PermittedSets,
    snapshot: &'a tantivy::Searcher,
    keys: &'a KeyMap,
}

impl crate::vectors::Permitted for Admitted<'_> {
    fn count(&self) -> usize {
        self.sets.count
    }

    fn admits(&self, key: u64) -> bool {
        self.keys.get(key).is_some_and(|a| {
            self.sets
                .sets
                .get(a.segment_ord as usize)
                .is_some_and(|s| a.doc_id < s.max_value() && s.contains(a.doc_id))
        })
    }

    fn keys(&self) -> Vec<u64> {
        let mut columns = SegmentColumns::new(self.snapshot, CHUNK_KEY);
        let mut keys = Vec::with_capacity(self.sets.count);
        for (ord, set) in self.sets.sets.iter().enumerate() {
            for doc in (0..set.max_value()).filter(|d| set.contains(*d)) {
                let address = DocAddress::new(ord as u32, doc);
                if let Ok(Some(key)) = columns.first(address) {
                    keys.push(key);
                }
            }
        }
        keys
    }

    fn all(&self) -> bool {
        self.sets.count == self.sets.total
    }
}

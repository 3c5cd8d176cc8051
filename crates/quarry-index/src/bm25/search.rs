//! BM25 retrieval over a snapshot of a collection's index: a caller's query prepared once
//! ([`Bm25Query`]: its terms, and its tantivy weight with the caller's ACL clause, scored by the
//! statistics of the chunks the caller may read, restricted by a metadata filter), its best chunks with equal scores ordered by
//! chunk key ([`top_by_score`]), the keys of the chunks the caller may read, and the BM25 score
//! of given chunks term by term (for a weighted fusion's vector-only candidates).

use super::stats::live_matches;
use super::{
    Bm25Index, CHUNK_KEY, KeyMap, PermittedStats, SegmentColumns, acl_filter, build_query,
    filter_query, query_terms, restrict, term_query,
};
use crate::error::{Error, Result};
use quarry_core::Filter;
use tantivy::collector::{Collector, TopDocs};
use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query, Scorer, Weight};
use tantivy::{DocAddress, DocSet};

/// One caller's BM25 query over one snapshot, prepared once and used at every depth.
pub(crate) struct Bm25Query<'a> {
    snapshot: &'a tantivy::Searcher,
    /// The terms of the query; none when the text has no searchable term.
    terms: Vec<tantivy::Term>,
    /// The query's weight over the snapshot (its terms looked up and their statistics read once,
    /// the caller's ACL clause included); `None` without terms or when not scored.
    weight: Option<Box<dyn Weight>>,
    /// The chunks this query may return: the caller's ACL and the query's metadata filter
    /// (`super::meta`); `None` when neither restricts.
    clause: Option<Box<dyn Query>>,
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
    ) -> Result<Self> {
        let fields = index.fields();
        let acl = tokens.as_ref().map(|t| acl_filter(&fields, t));
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
        let stats = match &tokens {
            Some(t) if scored && !terms.is_empty() => Some(PermittedStats::new(
                snapshot,
                fields,
                t.clone(),
                index.totals_cache(),
            )),
            _ => None,
        };
        let mut query = Bm25Query {
            snapshot,
            terms,
            weight: None,
            clause,
            stats,
        };
        if let Some(q) = build_query(&query.terms)
            && scored
        {
            let q = match &query.clause {
                Some(clause) => restrict(q, clause.box_clone()),
                None => q,
            };
            query.weight = Some(q.weight(query.scoring())?);
        }
        Ok(query)
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

    /// The query's terms.
    pub(crate) fn terms(&self) -> &[tantivy::Term] {
        &self.terms
    }

    /// How this caller's BM25 scores are computed: over the chunks it may read.
    fn scoring(&self) -> EnableScoring<'_> {
        match &self.stats {
            Some(stats) => EnableScoring::enabled_from_statistics_provider(stats, self.snapshot),
            None => EnableScoring::enabled_from_searcher(self.snapshot),
        }
    }

    /// The best `limit` chunks by BM25 among those the caller may see (the ACL is a clause of
    /// the query itself), best first, as `(score, chunk key, address)`. Equal scores are ordered
    /// by chunk key, so the answer does not depend on where tantivy put the chunks (two
    /// identical ingests, or a rebuild, rank alike); see [`top_by_score`].
    pub(crate) fn top(&self, limit: usize) -> Result<Vec<(f32, u64, DocAddress)>> {
        let Some(weight) = &self.weight else {
            return Ok(Vec::new());
        };
        top_by_score(self.snapshot, weight.as_ref(), limit.max(1))
    }

    /// The chunks of the snapshot this query may return (every chunk when nothing restricts
    /// it), as a bitset of each segment's live documents.
    pub(crate) fn permitted(&self) -> Result<PermittedSets> {
        let sets = match &self.clause {
            Some(clause) => live_matches(self.snapshot, clause.as_ref())?,
            None => live_matches(self.snapshot, &tantivy::query::AllQuery)?,
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
            .terms
            .iter()
            .map(|t| term_query(t).weight(scoring))
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

/// Hits as `(score, chunk key, address)`.
type Ranked = Vec<(f32, u64, DocAddress)>;
/// Collects one segment (by ordinal) into [`Ranked`] hits.
type SegmentCollect<'a> = &'a dyn Fn(u32, &tantivy::SegmentReader) -> tantivy::Result<Ranked>;

/// The best `limit` documents of `snapshot` for `weight`, as `(score, chunk key, address)`,
/// by score and then by chunk key. The fast path is tantivy's top-k by score (with block-max
/// WAND), asked for one more than needed: when that one ties with the last kept, documents of
/// equal score straddle the cut and tantivy would have chosen among them by address, so the
/// query runs again ranked by `(score, chunk key)` exactly (slower, without pruning).
pub(crate) fn top_by_score(
    snapshot: &tantivy::Searcher,
    weight: &dyn tantivy::query::Weight,
    limit: usize,
) -> Result<Ranked> {
    let collect = |collector: SegmentCollect<'_>| {
        let mut all = Vec::new();
        for (ord, reader) in snapshot.segment_readers().iter().enumerate() {
            all.extend(collector(ord as u32, reader)?);
        }
        all.sort_by(|a: &(f32, u64, DocAddress), b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok::<_, Error>(all)
    };
    let fast = TopDocs::with_limit(limit + 1).order_by_score();
    let mut top = collect(&|ord, reader| {
        let keys = reader.fast_fields().u64(CHUNK_KEY)?;
        let fruit = fast.collect_segment(weight, ord, reader)?;
        Ok(fast
            .merge_fruits(vec![fruit])?
            .into_iter()
            .filter_map(|(score, a)| keys.first(a.doc_id).map(|k| (score, k, a)))
            .collect())
    })?;
    if top.len() > limit && top[limit].0 == top[limit - 1].0 {
        let exact = TopDocs::with_limit(limit).tweak_score(|reader: &tantivy::SegmentReader| {
            let keys = reader.fast_fields().u64(CHUNK_KEY).ok();
            move |doc: tantivy::DocId, score: f32| {
                let key = keys.as_ref().and_then(|k| k.first(doc)).unwrap_or(u64::MAX);
                (score, std::cmp::Reverse(key))
            }
        });
        top = collect(&|ord, reader| {
            let fruit = exact.collect_segment(weight, ord, reader)?;
            Ok(exact
                .merge_fruits(vec![fruit])?
                .into_iter()
                .map(|((score, key), a)| (score, key.0, a))
                .collect())
        })?;
    }
    top.truncate(limit);
    Ok(top)
}

/// The chunks one query may return, as bitsets of each segment's live documents: what the
/// vector search asks about the points it reaches ([`Admitted`]).
pub(crate) struct PermittedSets {
    sets: Vec<tantivy::BitSet>,
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
        self.keys.get(&key).is_some_and(|a| {
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

//! A caller's permitted chunks as a query: the bitsets of the live chunks its ACL admits, made
//! once per snapshot and ACL and kept in the [`TotalsCache`], read by every query of that caller.
//!
//! The ACL's own query ([`acl_filter`], a term set on the `acl` field) walks the postings of the
//! caller's tokens at every query: at a million chunks and a token most chunks hold, that walk
//! was more than half of a vector query's time and most of a restricted BM25 query's. A bitset
//! answers the same question by lookup. Tantivy has no cache of filter results of its own (its
//! `Query` is evaluated per segment reader on every search), so this is the small piece that does it.

use super::query::acl_filter;
use super::schema::Fields;
use super::stats::{TotalsCache, live_matches, segments_key};
use std::sync::Arc;
use tantivy::index::SegmentId;
use tantivy::query::{
    BitSetDocSet, ConstScorer, EmptyScorer, EnableScoring, Explanation, Query, Scorer, Weight,
};
use tantivy::{BitSet, DocId, Score, SegmentReader, TantivyError};

impl TotalsCache {
    /// The live chunks of each segment of `searcher` (by ordinal) that the ACL `tokens` admits:
    /// from the cache, or made by one pass of the ACL query and kept.
    pub(crate) fn permitted(
        &self,
        searcher: &tantivy::Searcher,
        fields: &Fields,
        tokens: &[String],
    ) -> tantivy::Result<Arc<Vec<BitSet>>> {
        let key = (segments_key(searcher), tokens.to_vec());
        if let Some(sets) = self.permitted_sets().get(&key) {
            return Ok(sets.clone());
        }
        let sets = Arc::new(live_matches(searcher, &acl_filter(fields, tokens))?);
        self.keep_permitted(key, sets.clone());
        Ok(sets)
    }
}

/// The chunks of given per-segment bitsets, as a query (each matching chunk scores the boost).
#[derive(Clone)]
pub(crate) struct PermittedQuery {
    /// The segments the sets belong to, in the sets' order.
    segments: Arc<[SegmentId]>,
    sets: Arc<Vec<BitSet>>,
}

impl std::fmt::Debug for PermittedQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chunks: u64 = self.sets.iter().map(|s| s.len() as u64).sum();
        write!(f, "PermittedQuery({chunks} chunks)")
    }
}

impl PermittedQuery {
    /// The chunks of `sets`, one per segment of `searcher` in ordinal order.
    pub(crate) fn new(searcher: &tantivy::Searcher, sets: Arc<Vec<BitSet>>) -> Self {
        let segments = searcher
            .segment_readers()
            .iter()
            .map(|r| r.segment_id())
            .collect();
        PermittedQuery { segments, sets }
    }

    /// The set of a segment; `None` for a segment the sets were not made for (admits nothing).
    fn set(&self, segment: SegmentId) -> Option<&BitSet> {
        let i = self.segments.iter().position(|s| *s == segment)?;
        self.sets.get(i)
    }
}

impl Query for PermittedQuery {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for PermittedQuery {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(match self.set(reader.segment_id()) {
            // a copy of one bit per chunk of the segment: microseconds, against the postings
            // walk it saves
            Some(set) => Box::new(ConstScorer::new(BitSetDocSet::from(set.clone()), boost)),
            None => Box::new(EmptyScorer),
        })
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        match self.set(reader.segment_id()) {
            Some(set) if doc < set.max_value() && set.contains(doc) => {
                Ok(Explanation::new("permitted", 1.0))
            }
            _ => Err(TantivyError::InvalidArgument(format!(
                "document {doc} is not permitted"
            ))),
        }
    }
}

//! BM25 statistics of the chunks one caller may read.
//!
//! BM25 weighs a term by how many chunks hold it (its IDF) and a chunk by its length against the
//! average. tantivy reads both over the whole index, so a reader's scores would move when chunks
//! it may not read are added: a side channel (add a document with a term, watch its IDF change
//! in another caller's scores) and a ranking that depends on what others stored. For a caller
//! with an ACL filter, [`PermittedStats`] counts only the live chunks the filter admits: its
//! scores are those of an index holding only the chunks it may read. (Token totals come from
//! fieldnorms, which tantivy stores rounded; an index of those chunks alone sums the exact
//! counts, so the average length can differ by a little.)
//!
//! Cost: per query, each term's postings intersected with the ACL filter once (about what the
//! BM25 retrieval itself costs); the bitsets of the permitted chunks and their chunk and token
//! totals, passes over every permitted chunk, are made once per snapshot and ACL and cached
//! ([`TotalsCache`]).

use super::schema::Fields;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tantivy::index::SegmentId;
use tantivy::query::{Bm25StatisticsProvider, EnableScoring};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{BitSet, DocSet, TERMINATED, Term};

/// What identifies the totals of one caller over one snapshot: its segments (with their delete
/// counts), the caller's ACL tokens and the field.
type TotalsKey = (Vec<(SegmentId, u32)>, Vec<String>, Field);

/// What identifies a caller's permitted chunks in one snapshot: its segments (with their delete
/// counts) and the caller's ACL tokens.
pub(super) type PermittedKey = (Vec<(SegmentId, u32)>, Vec<String>);

/// Per snapshot and ACL: the permitted chunks' bitsets and their chunk and token totals. Small:
/// each map is emptied when full.
#[derive(Default)]
pub struct TotalsCache {
    totals: Mutex<HashMap<TotalsKey, (u64, u64)>>,
    permitted: Mutex<HashMap<PermittedKey, Arc<Vec<BitSet>>>>,
}

impl TotalsCache {
    pub(super) fn permitted_sets(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<PermittedKey, Arc<Vec<BitSet>>>> {
        self.permitted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a caller's permitted chunks (the map is emptied when full).
    pub(super) fn keep_permitted(&self, key: PermittedKey, sets: Arc<Vec<BitSet>>) {
        let mut cache = self.permitted_sets();
        if cache.len() >= BITSET_ENTRIES {
            cache.clear();
        }
        cache.insert(key, sets);
    }
}

/// Totals kept before that map is emptied.
const CACHE_ENTRIES: usize = 1024;
/// Bitsets kept (one bit per chunk each) before that map is emptied.
const BITSET_ENTRIES: usize = 64;

/// The statistics provider of a caller with ACL tokens `tokens` over `searcher`.
pub struct PermittedStats<'a> {
    searcher: &'a tantivy::Searcher,
    fields: Fields,
    tokens: Vec<String>,
    /// Per segment, the live chunks the caller may read ([`TotalsCache::permitted`]).
    permitted: Arc<Vec<BitSet>>,
    cache: &'a TotalsCache,
    /// Each term's count, once per query (its weights, restricted and not, read it twice).
    doc_freqs: Mutex<HashMap<Term, u64>>,
}

impl<'a> PermittedStats<'a> {
    pub fn new(
        searcher: &'a tantivy::Searcher,
        fields: Fields,
        tokens: Vec<String>,
        permitted: Arc<Vec<BitSet>>,
        cache: &'a TotalsCache,
    ) -> Self {
        PermittedStats {
            searcher,
            fields,
            tokens,
            permitted,
            cache,
            doc_freqs: Mutex::default(),
        }
    }

    /// `(live permitted chunks, their tokens in `field`)`, from the cache or by a pass over them.
    fn totals(&self, field: Field) -> tantivy::Result<(u64, u64)> {
        let key: TotalsKey = (segments_key(self.searcher), self.tokens.clone(), field);
        if let Some(t) = self
            .cache
            .totals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(*t);
        }
        let (mut docs, mut tokens) = (0u64, 0u64);
        for (reader, set) in self
            .searcher
            .segment_readers()
            .iter()
            .zip(self.permitted.iter())
        {
            let norms = reader.get_fieldnorms_reader(field)?;
            for doc in 0..reader.max_doc() {
                if set.contains(doc) {
                    docs += 1;
                    tokens += u64::from(norms.fieldnorm(doc));
                }
            }
        }
        let mut cache = self.cache.totals.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, (docs, tokens));
        Ok((docs, tokens))
    }
}

impl Bm25StatisticsProvider for PermittedStats<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        Ok(self.totals(field)?.1)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.totals(self.fields.context)?.0)
    }

    /// The term's postings counted against the permitted chunks.
    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let memo = || self.doc_freqs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = memo().get(term) {
            return Ok(*n);
        }
        let mut n = 0u64;
        for (reader, set) in self
            .searcher
            .segment_readers()
            .iter()
            .zip(self.permitted.iter())
        {
            let inverted = reader.inverted_index(term.field())?;
            let Some(info) = inverted.get_term_info(term)? else {
                continue;
            };
            if reader.num_deleted_docs() == 0 && set.len() == reader.max_doc() as usize {
                // every chunk of the segment permitted, none deleted: the term's own count
                n += u64::from(info.doc_freq);
                continue;
            }
            let mut postings =
                inverted.read_postings_from_terminfo(&info, IndexRecordOption::Basic)?;
            let mut doc = postings.doc();
            while doc != TERMINATED {
                n += u64::from(set.contains(doc));
                doc = postings.advance();
            }
        }
        memo().insert(term.clone(), n);
        Ok(n)
    }
}

/// The snapshot's segments, in ordinal order, with their delete counts: what a caller's permitted
/// chunks depend on besides its tokens.
pub(super) fn segments_key(searcher: &tantivy::Searcher) -> Vec<(SegmentId, u32)> {
    searcher
        .segment_readers()
        .iter()
        .map(|r| (r.segment_id(), r.num_deleted_docs()))
        .collect()
}

/// The live documents of each segment of `searcher` that `query` matches, one bitset a segment
/// (by segment ordinal).
pub(crate) fn live_matches(
    searcher: &tantivy::Searcher,
    query: &dyn tantivy::query::Query,
) -> tantivy::Result<Vec<BitSet>> {
    let weight = query.weight(EnableScoring::disabled_from_searcher(searcher))?;
    let mut sets = Vec::with_capacity(searcher.segment_readers().len());
    for reader in searcher.segment_readers() {
        let alive = reader.alive_bitset();
        let mut set = BitSet::with_max_value(reader.max_doc());
        let mut scorer = weight.scorer(reader, 1.0)?;
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            if alive.is_none_or(|a| a.is_alive(doc)) {
                set.insert(doc);
            }
            doc = scorer.advance();
        }
        sets.push(set);
    }
    Ok(sets)
}

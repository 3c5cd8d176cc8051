//! The feedback of a BM25 query ([`quarry_core::feedback`], RM3): the terms of its best chunks,
//! read back from the index and analysed as the index analyses text.
//!
//! A chunk's `context` field (what BM25 searches) is indexed but not stored, so a feedback chunk
//! is represented by what is stored: the titles of its documents and its own text. Only chunks
//! the caller may read are feedback (they come from the caller's own restricted ranking), and of
//! a chunk several documents share, only the titles of documents the caller may read (`admits`)
//! count: an expansion never carries a word the caller could not have read.

use super::Bm25Index;
use super::query::analysed_counts_up_to;
use crate::catalog::Occurrence;
use crate::error::Result;
use quarry_core::feedback::FeedbackChunk;
use tantivy::DocAddress;

/// Most distinct words taken from one feedback chunk.
const MAX_CHUNK_TERMS: usize = 4096;

/// The first `limit` of `top` (`(score, chunk key, address)`, the caller's best chunks) that
/// a document `admits` holds, each as its score and the analysed words of its text and admitted
/// titles with their counts. A chunk no admitted document holds (one several documents share
/// matches the filter by its shared mark, as in the search itself) is not feedback.
pub(super) fn feedback_terms(
    index: &Bm25Index,
    snapshot: &tantivy::Searcher,
    top: &[(f32, u64, DocAddress)],
    admits: &dyn Fn(&Occurrence) -> bool,
    limit: usize,
) -> Result<Vec<FeedbackChunk>> {
    let mut out = Vec::with_capacity(limit.min(top.len()));
    for (score, _, address) in top {
        if out.len() == limit {
            break;
        }
        let rec = index.record(snapshot, *address)?;
        let mut text = String::new();
        let mut titles = std::collections::HashSet::new();
        let mut admitted = false;
        for occ in rec.occurrences.iter().filter(|o| admits(o)) {
            admitted = true;
            if !occ.title.is_empty() && titles.insert(occ.title.as_str()) {
                text.push_str(&occ.title);
                text.push('\n');
            }
        }
        if !admitted {
            continue;
        }
        text.push_str(&rec.text);
        out.push((*score, analysed_counts_up_to(&text, MAX_CHUNK_TERMS)));
    }
    Ok(out)
}

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

/// Each of `top` (`(score, chunk key, address)`, the caller's best chunks) as its score and the
/// analysed words of its text and readable titles with their counts.
pub(super) fn feedback_terms(
    index: &Bm25Index,
    snapshot: &tantivy::Searcher,
    top: &[(f32, u64, DocAddress)],
    admits: &dyn Fn(&Occurrence) -> bool,
) -> Result<Vec<FeedbackChunk>> {
    let mut out = Vec::with_capacity(top.len());
    for (score, _, address) in top {
        let rec = index.record(snapshot, *address)?;
        let mut text = String::new();
        let mut titles: Vec<&str> = Vec::new();
        for occ in rec.occurrences.iter().filter(|o| admits(o)) {
            if !occ.title.is_empty() && !titles.contains(&occ.title.as_str()) {
                titles.push(&occ.title);
                text.push_str(&occ.title);
                text.push('\n');
            }
        }
        text.push_str(&rec.text);
        out.push((*score, analysed_counts_up_to(&text, MAX_CHUNK_TERMS)));
    }
    Ok(out)
}

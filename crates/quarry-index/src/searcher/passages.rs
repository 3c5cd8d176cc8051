//! What a hit carries besides its chunk, added as a pass over the final hits of a query:
//! highlights (the byte ranges of the query's terms in the hit's text) and a passage (the chunk
//! merged with its neighbouring chunks of the same document, `expand`). A hit's citation is its
//! occurrence's (`response::hit`): the heading path is stored with each occurrence at ingest.
//!
//! **Highlights** run the BM25 analyzer's token stream over the hit's text and keep the tokens
//! whose analysed term is one of the query's terms ([`analysed_terms`], what BM25 searches), so a highlight is exactly
//! what BM25 matched (stemming, ASCII folding, stop words included). tantivy's
//! `SnippetGenerator` is not used: it picks one best fragment of bounded length and needs an
//! indexed field holding the text (the stored `text` field is not indexed), while a hit wants
//! every match of its whole text; token offsets are byte offsets of the text, on char
//! boundaries, in order and disjoint.
//!
//! **Neighbours** are read from the query's BM25 snapshot, so a passage is consistent with the
//! hit: a term query on `doc_ids` finds every chunk of the document, and each stored record's
//! occurrences of that document give its offsets. Reading them costs one stored record per chunk
//! of the document, once per document per query. Every occurrence used must be one the caller may
//! read (it always is: the hit proves the caller may read the document, and every occurrence of
//! one document carries that document's ACL; checked anyway).

use super::response::{Hit, Passage};
use crate::bm25::{Bm25Index, analysed_terms, analyzer};
use crate::catalog::Occurrence;
use crate::error::Result;
use quarry_core::QueryOptions;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use tantivy::Term;
use tantivy::collector::DocSetCollector;
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::TextAnalyzer;

/// Byte ranges `[start, end)` of the tokens of `text` whose analysed term is in `terms`: sorted,
/// disjoint, on char boundaries.
pub(crate) fn highlights(text: &str, terms: &HashSet<String>) -> Vec<[usize; 2]> {
    static ANALYZER: OnceLock<TextAnalyzer> = OnceLock::new();
    let mut out = Vec::new();
    if terms.is_empty() {
        return out;
    }
    // built once; a clone shares the stop-word set
    let mut analyzer = ANALYZER.get_or_init(analyzer).clone();
    let mut stream = analyzer.token_stream(text);
    while let Some(token) = stream.next() {
        if terms.contains(&token.text) {
            out.push([token.offset_from, token.offset_to]);
        }
    }
    out
}

/// One chunk of a document at one place in it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Piece {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) text: String,
}

/// Reads every chunk of `doc_id` from the snapshot: the occurrences of that document in each
/// record holding it, those `may_read` admits.
fn doc_chunks(
    index: &Bm25Index,
    snapshot: &tantivy::Searcher,
    doc_id: &str,
    may_read: &dyn Fn(&Occurrence) -> bool,
) -> Result<Vec<Piece>> {
    let term = Term::from_field_text(index.fields().doc_ids, doc_id);
    let found = snapshot.search(
        &TermQuery::new(term, IndexRecordOption::Basic),
        &DocSetCollector,
    )?;
    let mut pieces = Vec::new();
    for address in found {
        let rec = index.record(snapshot, address)?;
        for occ in rec.occurrences.iter().filter(|o| o.doc_id == doc_id) {
            if !may_read(occ) {
                continue;
            }
            pieces.push(Piece {
                start: occ.start,
                end: occ.end,
                text: rec.text.clone(),
            });
        }
    }
    pieces.sort_by_key(|p| (p.start, p.end));
    pieces.dedup_by_key(|p| (p.start, p.end));
    Ok(pieces)
}

/// The text of `pieces` (in document order) as one passage and its offsets in the document: a
/// piece overlapping the text so far adds only what follows it, one inside it adds nothing, and a
/// gap between pieces (text no chunk holds, whitespace) becomes one newline.
pub(crate) fn stitch(pieces: &[Piece]) -> (String, [usize; 2]) {
    let Some(first) = pieces.first() else {
        return (String::new(), [0, 0]);
    };
    let mut text = String::with_capacity(pieces.iter().map(|p| p.text.len()).sum());
    let mut end = first.start;
    for p in pieces {
        if p.start > end {
            text.push('\n');
            text.push_str(&p.text);
        } else if p.end > end {
            // `end` is the end of another chunk of the same text, so a char boundary of this one
            let mut skip = end - p.start;
            while !p.text.is_char_boundary(skip) {
                skip += 1;
            }
            text.push_str(&p.text[skip..]);
        }
        end = end.max(p.end);
    }
    (text, [first.start, end])
}

/// A passage being built: the owner hit (best first) and its range of pieces.
struct Span {
    owner: usize,
    /// The hits whose passages this one holds, the owner included.
    members: Vec<usize>,
    doc_id: String,
    lo: usize,
    hi: usize,
    bytes: [usize; 2],
}

/// Adds highlights and passages to `hits` as `q` asks. `may_read` says whether the
/// caller may read an occurrence.
pub(super) fn annotate(
    hits: &mut [Hit],
    q: &QueryOptions,
    index: &Bm25Index,
    snapshot: &tantivy::Searcher,
    may_read: &dyn Fn(&Occurrence) -> bool,
) -> Result<()> {
    // the query's terms as BM25 searches them
    let terms: HashSet<String> = if q.highlight {
        analysed_terms(&q.text).into_iter().collect()
    } else {
        HashSet::new()
    };
    if q.highlight {
        for h in hits.iter_mut() {
            h.highlights = Some(highlights(&h.text, &terms));
        }
    }
    let Some(expand) = q.expand else {
        return Ok(());
    };
    let mut docs: HashMap<String, Vec<Piece>> = HashMap::new();
    for h in hits.iter() {
        if !docs.contains_key(&h.doc_id) {
            let chunks = doc_chunks(index, snapshot, &h.doc_id, may_read)?;
            docs.insert(h.doc_id.clone(), chunks);
        }
    }
    let spans = spans(hits, &docs, expand.neighbors);
    for s in &spans {
        let (text, offsets) = stitch(&docs[&s.doc_id][s.lo..=s.hi]);
        let highlights = q.highlight.then(|| highlights(&text, &terms));
        hits[s.owner].passage = Some(Passage {
            text,
            offsets,
            highlights,
        });
    }
    for s in &spans {
        for m in s.members.iter().filter(|m| **m != s.owner) {
            hits[*m].passage_ref = Some(s.owner);
        }
    }
    Ok(())
}

/// The passages of `hits` (best first) with `neighbors` pieces on each side of a hit's: a hit
/// whose passage would overlap that of a better hit of the same document widens that one
/// instead (to the union of both), merging again while the union overlaps another.
fn spans(hits: &[Hit], docs: &HashMap<String, Vec<Piece>>, neighbors: usize) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    for (i, h) in hits.iter().enumerate() {
        let pieces = &docs[&h.doc_id];
        let Some(at) = pieces.iter().position(|p| [p.start, p.end] == h.offsets) else {
            continue; // the caller may not read this chunk's document (cannot happen)
        };
        let lo = at.saturating_sub(neighbors);
        let hi = (at + neighbors).min(pieces.len() - 1);
        let mut span = Span {
            owner: i,
            members: vec![i],
            doc_id: h.doc_id.clone(),
            lo,
            hi,
            bytes: bytes(pieces, lo, hi),
        };
        while let Some(k) = spans.iter().position(|s| {
            s.doc_id == span.doc_id && s.bytes[0] < span.bytes[1] && span.bytes[0] < s.bytes[1]
        }) {
            let other = spans.remove(k);
            span.owner = span.owner.min(other.owner);
            span.members.extend(other.members);
            span.lo = span.lo.min(other.lo);
            span.hi = span.hi.max(other.hi);
            span.bytes = bytes(pieces, span.lo, span.hi);
        }
        spans.push(span);
    }
    spans.sort_by_key(|s| s.owner);
    spans
}

/// The byte range pieces `lo..=hi` cover.
fn bytes(pieces: &[Piece], lo: usize, hi: usize) -> [usize; 2] {
    let end = pieces[lo..=hi].iter().map(|p| p.end).max().unwrap_or(0);
    [pieces[lo].start, end]
}

#[cfg(test)]
#[path = "passages_tests.rs"]
mod tests;

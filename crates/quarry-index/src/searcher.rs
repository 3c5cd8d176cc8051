//! The read side: a [`Searcher`] is an immutable snapshot of one collection, taken with `&self` and
//! safe to use from many threads. Results never change under a reader while writers commit.

use crate::bm25::{Bm25Index, build_query};
use crate::catalog::{ChunkRecord, CollectionRow};
use crate::error::{Error, Result};
use quarry_core::{GroupBy, Mode, QueryOptions};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use tantivy::collector::TopDocs;

/// Per-retriever scores and ranks of a hit (ranks from 1).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25_rank: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_rank: Option<usize>,
}

/// One result: a chunk, in the document named by `doc_id`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    pub doc_id: String,
    pub chunk_id: String,
    pub score: f32,
    pub title: String,
    pub text: String,
    pub source: String,
    /// Byte offsets of the chunk in the document's text.
    pub offsets: [usize; 2],
    pub scores: Scores,
    /// Other documents holding the same chunk text (content-addressed dedup), for `group_by=chunk`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_in: Vec<String>,
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchResponse {
    pub results: Vec<Hit>,
    /// The embedding version that answered; `None` until the collection has vectors.
    pub embedding_version: Option<String>,
    pub degraded: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub took_ms: f64,
}

pub struct Searcher {
    collection: CollectionRow,
    index: Arc<Bm25Index>,
    snapshot: tantivy::Searcher,
}

impl Searcher {
    pub(crate) fn new(collection: CollectionRow, index: Arc<Bm25Index>) -> Self {
        let snapshot = index.searcher();
        Searcher {
            collection,
            index,
            snapshot,
        }
    }

    pub fn collection(&self) -> &str {
        &self.collection.name
    }

    /// Chunks in the snapshot.
    pub fn num_chunks(&self) -> u64 {
        self.snapshot.num_docs()
    }

    /// The best `limit` chunks for `text` by BM25, best first.
    pub fn bm25(&self, text: &str, limit: usize) -> Result<Vec<(f32, ChunkRecord)>> {
        let Some(query) = build_query(&self.index.fields(), text) else {
            return Ok(Vec::new());
        };
        let top = self
            .snapshot
            .search(&query, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
        top.into_iter()
            .map(|(score, address)| Ok((score, self.index.record(&self.snapshot, address)?)))
            .collect()
    }

    pub fn search(&self, q: &QueryOptions) -> Result<SearchResponse> {
        let started = Instant::now();
        let mut warnings = Vec::new();
        match q.mode {
            Mode::Bm25 => {}
            Mode::Hybrid => warnings.push(
                "mode=hybrid: this collection has no embedding version yet, so the answer comes from BM25 alone"
                    .to_owned(),
            ),
            Mode::Vector => {
                return Err(Error::Input(format!(
                    "mode=vector: collection `{}` has no embedding version yet; use mode=bm25",
                    self.collection.name
                )));
            }
        }
        let results = match q.group_by {
            GroupBy::Chunk => self.chunk_hits(&q.text, q.top_k)?,
            GroupBy::Document => self.document_hits(&q.text, q.top_k)?,
        };
        if results.is_empty() && build_query(&self.index.fields(), &q.text).is_none() {
            warnings.push(
                "the query has no searchable words (only stop words or punctuation)".to_owned(),
            );
        }
        Ok(SearchResponse {
            results,
            embedding_version: self.collection.active_version.clone(),
            degraded: false,
            warnings,
            took_ms: started.elapsed().as_secs_f64() * 1e3,
        })
    }

    fn chunk_hits(&self, text: &str, top_k: usize) -> Result<Vec<Hit>> {
        let ranked = self.bm25(text, top_k)?;
        Ok(ranked
            .into_iter()
            .enumerate()
            .filter_map(|(i, (score, rec))| {
                let also_in = rec
                    .occurrences
                    .iter()
                    .skip(1)
                    .map(|o| o.doc_id.clone())
                    .collect();
                hit(&rec, 0, score, i + 1).map(|mut h| {
                    h.also_in = also_in;
                    h
                })
            })
            .collect())
    }

    /// Each document represented by its best chunk. Fetches chunks in growing windows until
    /// `top_k` distinct documents are found or the index is exhausted.
    fn document_hits(&self, text: &str, top_k: usize) -> Result<Vec<Hit>> {
        let total = self.snapshot.num_docs() as usize;
        let mut window = (top_k * 3).max(30);
        loop {
            let ranked = self.bm25(text, window)?;
            let exhausted = ranked.len() < window || window >= total;
            let mut seen = HashSet::new();
            let mut hits = Vec::new();
            'outer: for (score, rec) in &ranked {
                for (occ_ix, occ) in rec.occurrences.iter().enumerate() {
                    if seen.insert(occ.doc_id.as_str()) {
                        hits.extend(hit(rec, occ_ix, *score, seen.len()));
                        if hits.len() == top_k {
                            break 'outer;
                        }
                    }
                }
            }
            if hits.len() == top_k || exhausted {
                return Ok(hits);
            }
            window = (window * 4).min(total.max(1));
        }
    }
}

fn hit(rec: &ChunkRecord, occurrence: usize, score: f32, rank: usize) -> Option<Hit> {
    let occ = rec.occurrences.get(occurrence)?;
    Some(Hit {
        doc_id: occ.doc_id.clone(),
        chunk_id: rec.hash.to_hex(),
        score,
        title: occ.title.clone(),
        text: rec.text.clone(),
        source: occ.source.clone(),
        offsets: [occ.start, occ.end],
        scores: Scores {
            bm25: Some(score),
            bm25_rank: Some(rank),
            ..Scores::default()
        },
        also_in: Vec::new(),
    })
}

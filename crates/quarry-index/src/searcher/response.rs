//! What a search answers: a [`SearchResponse`] of [`Hit`]s, each with the [`Scores`] and ranks
//! each retriever gave it, its document's metadata, and, when asked, how its score was made
//! ([`Explain`]); facet counts and the query's [`Timings`] when asked.

use super::candidate::Candidate;
use crate::catalog::ChunkRecord;
use quarry_core::fusion::Part;
use quarry_core::{DocFormat, QueryOptions};
use std::collections::BTreeMap;

/// Per-retriever scores and ranks of a hit (ranks from 1).
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Scores {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25_rank: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_rank: Option<usize>,
    /// The reranker's score (a reranked hit; its `score` too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank: Option<f32>,
    /// The fused score a reranked hit had before reranking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fused: Option<f32>,
}

/// One retriever's part of a hit's fused score.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RetrieverPart {
    /// Its rank in the retriever's list (from 1); `None` for a chunk the retriever did not
    /// return but was scored for a weighted fusion.
    pub rank: Option<usize>,
    /// The retriever's own score (BM25, or cosine similarity).
    pub score: f32,
    /// The score as fusion uses it: over the list's best for a weighted fusion, `1 / (k + rank)`
    /// for RRF, the score itself for a single retriever.
    pub normalized: f32,
    /// Its fraction of the hit's fused score (the parts add up to 1).
    pub share: f32,
    /// The weight fusion gave this retriever's list for this query: `1 − alpha` or `alpha` for a
    /// weighted fusion, the query's own for an adaptive one, 1 for RRF and a single retriever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f32>,
}

/// A word of a query expanded by pseudo-relevance feedback and its BM25 query weight
/// (`explain: true`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ExpansionTerm {
    /// The analysed (stemmed) word.
    pub term: String,
    pub weight: f32,
    /// Whether the feedback added it (false: a word of the query, its weight perhaps raised).
    pub added: bool,
}

/// The words of an expanded query as `explain` shows them.
pub(super) fn expansion(e: Option<(&[(String, f32)], usize)>) -> Option<Vec<ExpansionTerm>> {
    let (weights, original) = e?;
    Some(
        weights
            .iter()
            .enumerate()
            .map(|(i, (term, weight))| ExpansionTerm {
                term: term.clone(),
                weight: *weight,
                added: i >= original,
            })
            .collect(),
    )
}

/// How a hit's score was made (`explain: true`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Explain {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25: Option<RetrieverPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<RetrieverPart>,
}

/// One result: a chunk, in the document named by `doc_id`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
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
    /// The document's metadata (only the keys named by the query's `include`, when it has one).
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Other documents holding the same chunk text (content-addressed dedup), for `group_by=chunk`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_in: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<Explain>,
    /// Byte ranges `[start, end)` in `text` of the query's terms (`highlight: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highlights: Option<Vec<[usize; 2]>>,
    /// Where the hit comes from, to cite it (`citation: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citation: Option<Citation>,
    /// The chunk with its neighbours in the document (`expand`); absent when `passage_ref` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passage: Option<Passage>,
    /// The index in `results` of a better hit whose `passage` holds this hit's (`expand`): the
    /// two passages overlapped and were merged into that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passage_ref: Option<usize>,
}

/// Where a hit comes from: its document and its place in it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Citation {
    pub doc_id: String,
    pub title: String,
    pub source: String,
    /// Byte offsets `[start, end)` of the chunk in the document's text.
    pub offsets: [usize; 2],
    /// For a Markdown or Word document, the headings the chunk is under, outermost first (a
    /// heading on the chunk's first line included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading_path: Option<Vec<String>>,
    /// For a PDF, the page the chunk lies on (1-based; a chunk never crosses a page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
}

/// A hit's chunk merged with its neighbouring chunks of the same document (`expand`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Passage {
    pub text: String,
    /// Byte offsets `[start, end)` of the passage in the document's text. Where the chunks leave
    /// a gap (whitespace no chunk holds) the text has one newline, so it may be shorter.
    pub offsets: [usize; 2],
    /// Byte ranges of the query's terms in the passage's `text` (`highlight: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highlights: Option<Vec<[usize; 2]>>,
}

/// How many matching documents hold one value of a field.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FacetCount {
    pub value: serde_json::Value,
    pub count: u64,
}

/// Where a query's time went, in milliseconds (`explain: true`). The two retrievers of a hybrid
/// query run at once, so their times overlap.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Timings {
    pub embed_ms: f64,
    pub bm25_ms: f64,
    pub vector_ms: f64,
    pub fusion_ms: f64,
    /// Reading and building the hits, and counting facets.
    pub post_ms: f64,
    /// Waiting for the reranker (when the query asked for reranking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank_ms: Option<f64>,
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SearchResponse {
    pub results: Vec<Hit>,
    /// The embedding version that answered; `None` when the collection has no vectors.
    pub embedding_version: Option<String>,
    pub degraded: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub took_ms: f64,
    /// The part of `took_ms` spent embedding the query (absent when it was not embedded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed_ms: Option<f64>,
    /// Per field asked for, its values over the matching documents, most frequent first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facets: Option<BTreeMap<String, Vec<FacetCount>>>,
    /// The BM25 query's words and weights after pseudo-relevance feedback (`explain: true` and
    /// an expanded query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expansion: Option<Vec<ExpansionTerm>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

/// The hit of `rec`'s occurrence number `occurrence`, with the metadata keys the query's
/// `include` names (all without it) and, if it asks, its citation.
pub(super) fn hit(
    rec: &ChunkRecord,
    occurrence: usize,
    c: &Candidate,
    q: &QueryOptions,
) -> Option<Hit> {
    let occ = rec.occurrences.get(occurrence)?;
    let metadata = match q.include.as_deref() {
        None => occ.metadata.clone(),
        Some(keys) => occ
            .metadata
            .iter()
            .filter(|(k, _)| keys.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let part = |p: Option<Part>, rank: Option<usize>| {
        p.map(|p| RetrieverPart {
            rank,
            score: p.score,
            normalized: p.normalized,
            share: if c.score > 0.0 {
                p.weight * p.normalized / c.score
            } else {
                0.0
            },
            weight: Some(p.weight),
        })
    };
    let explain = (c.parts.iter().any(Option::is_some)).then(|| Explain {
        bm25: part(c.parts[0], c.bm25.map(|b| b.1)),
        vector: part(c.parts[1], c.vector.map(|v| v.1)),
    });
    Some(Hit {
        doc_id: occ.doc_id.clone(),
        chunk_id: rec.hash.to_hex(),
        score: c.score,
        title: occ.title.clone(),
        text: rec.text.clone(),
        source: occ.source.clone(),
        offsets: [occ.start, occ.end],
        scores: Scores {
            bm25: c.bm25.map(|b| b.0),
            bm25_rank: c.bm25.map(|b| b.1),
            vector: c.vector.map(|v| v.0),
            vector_rank: c.vector.map(|v| v.1),
            rerank: None,
            fused: None,
        },
        metadata,
        also_in: Vec::new(),
        explain,
        highlights: None,
        citation: q.citation.then(|| Citation {
            doc_id: occ.doc_id.clone(),
            title: occ.title.clone(),
            source: occ.source.clone(),
            offsets: [occ.start, occ.end],
            heading_path: DocFormat::parse(&occ.format)
                .is_some_and(DocFormat::has_headings)
                .then(|| occ.heading_path.clone()),
            page: occ.page,
        }),
        passage: None,
        passage_ref: None,
    })
}

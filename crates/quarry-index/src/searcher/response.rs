//! What a search answers: a [`SearchResponse`] of [`Hit`]s, each with the [`Scores`] and ranks
//! each retriever gave it.

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
    /// The embedding version that answered; `None` when the collection has no vectors.
    pub embedding_version: Option<String>,
    pub degraded: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub took_ms: f64,
    /// The part of `took_ms` spent embedding the query (absent when it was not embedded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed_ms: Option<f64>,
}

//! What the engine reports about collections: their counts ([`CollectionStats`]) and their
//! embedding versions ([`VersionInfo`]).

use crate::catalog::VersionState;
use quarry_core::ChunkOptions;

/// An embedding version as `GET /v1/collections/{c}/versions` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct VersionInfo {
    pub id: String,
    pub embedder: String,
    pub fingerprint: String,
    pub spec: quarry_core::EmbedderSpec,
    pub state: VersionState,
    pub active: bool,
    /// Chunks of the collection with a stored vector of this version's fingerprint.
    pub vectors: u64,
    /// How its vector index holds vectors (`[vector] quantization`, or what a requantize set).
    pub quantization: crate::vectors::Quantization,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    /// For a `building` version: the job building it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<VersionJob>,
}

/// The job building a version, and how far it got.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct VersionJob {
    pub id: String,
    pub processed: u64,
    pub total: u64,
}

/// Counts of a collection, as `status` and `GET /v1/collections` show them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct CollectionStats {
    pub name: String,
    pub documents: u64,
    pub chunks: u64,
    /// The collection's last committed generation; shown to admins only: it moves with every
    /// write, including writes of documents a reader may not see.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    pub active_embedding_version: Option<String>,
    /// The embedder name and fingerprint of the active version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Chunks of the collection with a stored vector of the active version (the rest are
    /// searchable by BM25 only, e.g. after `--no-embed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vectors: Option<u64>,
    pub versions_building: Vec<String>,
    pub chunk_options: ChunkOptions,
    /// How BM25 scores the collection's chunks.
    pub bm25: quarry_core::Bm25Params,
    /// Bytes of document text the catalog stores for the collection (admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_bytes: Option<u64>,
    /// Bytes of the collection's derived indexes on disk, `collections/<name>/` (BM25 and the
    /// vector dumps of every version; admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_bytes: Option<u64>,
}

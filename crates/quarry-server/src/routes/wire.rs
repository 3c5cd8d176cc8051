//! The answers that handlers build as JSON objects around engine types, as typed structs: what
//! they serialise to is what the OpenAPI document (`crate::openapi`) says of them. A field of
//! `serde_json::Value` is an engine type serialised by the handler; its `value_type` names that
//! type, so the document describes it.

use quarry_core::Fusion;
use quarry_index::{CollectionStats, DocumentRow};
use serde::Serialize;
use utoipa::ToSchema;

/// `{"status": "ok"}` (`/healthz`) or `{"status": "ready"}` (`/readyz`).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Status {
    pub status: &'static str,
}

/// `GET /v1/collections`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CollectionList {
    pub collections: Vec<CollectionStats>,
}

/// A page of documents, without their texts: `next_after` is the `after` of the next page, `null`
/// after the last.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DocumentList {
    #[schema(value_type = Vec<DocumentRow>)]
    pub documents: Vec<serde_json::Value>,
    pub next_after: Option<String>,
}

/// An ordinary delete of a document: its id and the generation that removed it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DocumentDeleted {
    pub deleted: String,
    pub generation: Option<u64>,
}

/// `{"deleted": true}` (a golden set).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Deleted {
    pub deleted: bool,
}

/// `{"retired": true}` (an embedding version).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Retired {
    pub retired: bool,
}

/// `PUT /v1/collections/{c}/golden/{name}`: how many queries the set now holds.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct GoldenStored {
    pub queries: usize,
}

/// `GET /v1/collections/{c}/golden`: the collection's golden sets (name, queries, dates).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct GoldenSets {
    #[schema(value_type = Vec<quarry_index::catalog::GoldenSummary>)]
    pub golden_sets: Vec<serde_json::Value>,
}

/// `GET /v1/collections/{c}/eval/runs`: the collection's recorded runs (docs/evaluation.md).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EvalRuns {
    #[schema(value_type = Vec<quarry_index::eval::EvalRunSummary>)]
    pub runs: Vec<serde_json::Value>,
}

/// `POST /v1/collections/{c}/eval`: the recorded run's id and what each mode measured.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EvalAnswer {
    pub run_id: String,
    pub collection: String,
    pub golden: String,
    /// The reader the run was evaluated as.
    #[schema(value_type = quarry_core::Principal)]
    pub principal: serde_json::Value,
    pub fusion: Fusion,
    pub rerank_top_n: Option<usize>,
    /// The metrics and latencies of each mode.
    #[schema(value_type = std::collections::BTreeMap<String, quarry_index::eval::ModeMetrics>)]
    pub modes: serde_json::Value,
}

/// `GET /v1/jobs`: each job (docs/versions-and-jobs.md) with its stored fields (`id`, `kind`,
/// `collection`, `state`, `params`, progress, `result`) and `rate_per_s`, `eta_s`, `tokens_per_s`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct JobList {
    #[schema(value_type = Vec<crate::views::JobView>)]
    pub jobs: Vec<serde_json::Value>,
}

/// `POST /v1/collections/{c}/reindex`: the queued job.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct JobQueued {
    pub job_id: String,
    #[schema(value_type = crate::views::JobView)]
    pub job: serde_json::Value,
}

/// `GET /v1/collections/{c}/versions`: each embedding version (docs/versions-and-jobs.md) with
/// `id`, `embedder`, `fingerprint`, `spec`, `state`, `active`, `vectors`, `quantization`, dates,
/// and the `job` building it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct VersionList {
    #[schema(value_type = Vec<quarry_index::VersionInfo>)]
    pub versions: Vec<serde_json::Value>,
}

/// `POST .../versions/{id}/activate`: the version now active.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct VersionAnswer {
    #[schema(value_type = quarry_index::VersionInfo)]
    pub version: serde_json::Value,
}

/// `DELETE .../documents/{id}`: an ordinary delete, or with `?forget=true` what was erased.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum DeleteAnswer {
    Deleted(DocumentDeleted),
    Forgotten(quarry_index::ForgetReport),
}

/// `POST /v1/embeddings`, in OpenAI's wire format.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EmbeddingsAnswer {
    /// `list`.
    pub object: &'static str,
    pub data: Vec<EmbeddingItem>,
    pub model: String,
    pub usage: Usage,
}

/// One input's vector, in the order of the inputs.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EmbeddingItem {
    /// `embedding`.
    pub object: &'static str,
    pub index: usize,
    pub embedding: Embedding,
}

/// The vector: numbers (`encoding_format: "float"`), or the little-endian `f32` bytes in base64.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum Embedding {
    Float(Vec<f32>),
    Base64(String),
}

/// Tokens of the inputs, as the model counts them (0 for an embedder without a tokenizer).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Usage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

/// `GET /v1/models`: the model `/v1/embeddings` serves (none without an embedder).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ModelList {
    /// `list`.
    pub object: &'static str,
    pub data: Vec<Model>,
}

/// A model, as OpenAI lists them, with quarry's details.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct Model {
    pub id: String,
    /// `model`.
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
    pub quarry: ModelDetails,
}

/// The embedder behind a model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct ModelDetails {
    /// Its configured name.
    pub embedder: String,
    pub provider: String,
    pub dimensions: usize,
    pub max_tokens: usize,
    pub fingerprint: String,
}

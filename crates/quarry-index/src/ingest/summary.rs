//! What an ingest run is asked to do ([`IngestOptions`]) and what it reports: its summary, each
//! skipped input or warning ([`Problem`]), and its progress in bytes.

use crate::engine::ApplyStats;
use std::collections::BTreeMap;

/// Default of [`IngestOptions::extract_timeout`]: far above what a sound file of
/// `max_file_bytes` takes, so only a pathological one reaches it.
pub const DEFAULT_EXTRACT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Settings of one ingest run.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub collection: String,
    /// ACL given to documents that carry none (`--acl`).
    pub acl: Vec<String>,
    /// Delete documents that vanished from the walked directories.
    pub sync: bool,
    /// Files (and JSONL lines) larger than this are skipped as `too_large`.
    pub max_file_bytes: u64,
    /// Longest a PDF or Word file may take to extract; past it the file is skipped as
    /// `timeout` (see [`super::guarded`]).
    pub extract_timeout: std::time::Duration,
    /// Documents per generation commit at most: with a committer the first batches hold 64, 128,
    /// … up to it.
    pub batch_docs: usize,
    /// Embed new chunks (`--no-embed` turns it off, for vectors loaded later from Parquet).
    pub embed: bool,
    /// Lets the caller cancel the ingest up to each batch's commit (an HTTP request that timed
    /// out): see [`crate::Cancel`].
    pub cancel: Option<crate::Cancel>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            collection: "default".into(),
            acl: Vec::new(),
            sync: false,
            max_file_bytes: 32 * 1024 * 1024,
            extract_timeout: DEFAULT_EXTRACT_TIMEOUT,
            batch_docs: 2000,
            embed: true,
            cancel: None,
        }
    }
}

/// A skipped input or a warning, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Problem {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub reason: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, reason: &str, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            line: None,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub(super) fn at_line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }
}

/// The summary of an ingest run (`quarry ingest --json`).
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct IngestSummary {
    pub collection: String,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Documents with unchanged content and a new ACL (re-indexed, not re-embedded).
    pub acl_updated: u64,
    pub deleted: u64,
    /// Skipped inputs by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Documents kept with a warning, by reason.
    pub warnings: BTreeMap<String, u64>,
    /// Chunks of the added and updated documents.
    pub chunks: u64,
    /// Chunks sent to the embedding model (over HTTP, shown to admins only).
    #[schema(required = false)]
    pub embedded: u64,
    /// Chunks whose vectors came from the cache (over HTTP, shown to admins only).
    #[schema(required = false)]
    pub cache_hits: u64,
    /// Tokens of the chunks embedded, as the model counts them (truncation applied), for
    /// embedders that count tokens (the local model); 0 for the others. Read from the engine's
    /// telemetry before and after a `quarry ingest` run (the process's own embedding meanwhile:
    /// the run's); absent where a process embeds for others at the same time (the documents
    /// API of a server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_embedded: Option<u64>,
    /// Seconds spent in embedding calls (of `seconds`, the whole run); present with
    /// `tokens_embedded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embed_seconds: Option<f64>,
    pub seconds: f64,
    /// Every skip and warning, with its path (and line, for JSONL).
    pub problems: Vec<Problem>,
}

impl IngestSummary {
    pub(super) fn problem(&mut self, p: Problem) {
        *self.skipped.entry(p.reason.clone()).or_default() += 1;
        self.problems.push(p);
    }

    pub(super) fn warning(&mut self, p: Problem) {
        *self.warnings.entry(p.reason.clone()).or_default() += 1;
        self.problems.push(p);
    }

    pub(super) fn add(&mut self, s: &ApplyStats) {
        self.added += s.added;
        self.updated += s.updated;
        self.unchanged += s.unchanged;
        self.acl_updated += s.acl_updated;
        self.deleted += s.deleted;
        self.embedded += s.embedded;
        self.cache_hits += s.cache_hits;
    }
}

/// Reports progress in bytes of input read and the documents they held. (What was embedded is
/// read from the engine's telemetry: [`crate::Telemetry::document_embedding`].)
pub trait Progress: Sync {
    fn start(&self, _total_bytes: u64) {}
    /// `bytes` more of the input read, holding `documents` documents (a file, or a JSONL line).
    fn advance(&self, _bytes: u64, _documents: u64) {}
}

/// No progress display.
pub struct NoProgress;
impl Progress for NoProgress {}

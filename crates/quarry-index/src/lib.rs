//! quarry-index: the retrieval engine, synchronous and free of HTTP.
//!
//! An [`Engine`] owns a data directory: the SQLite catalog (the source of truth for collections,
//! documents, chunks and generations) and one tantivy BM25 index per collection, derived from the
//! catalog. Writes go through [`Engine::apply`], which commits one *generation* atomically across both
//! stores (see `ARCHITECTURE.md`, "Generations"). Reads go through a [`Searcher`], an immutable
//! snapshot of one generation.

pub mod bm25;
pub mod cancel;
pub mod catalog;
pub mod collection;
pub mod engine;
pub mod error;
pub mod eval;
pub mod ingest;
pub mod jobs;
pub mod options;
pub mod searcher;
pub mod telemetry;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test_support;
pub mod vectors;

pub use cancel::Cancel;
pub use catalog::{CollectionDeleted, DocumentRow, Forgotten};
pub use collection::{ActiveEmbedder, CollectionSettings, EmbedderSource};
pub use engine::{ApplyStats, Change, CollectionStats, Engine, ForgetReport, VersionInfo};
pub use error::{Error, ErrorKind, Result};
pub use ingest::{
    IngestOptions, IngestSummary, Ingested, NoProgress, Problem, Progress, VectorsSummary, ingest,
    ingest_inputs, ingest_records,
};
pub use options::EngineOptions;
pub use searcher::{
    Citation, Explain, FacetCount, Hit, Passage, RetrieverPart, Scores, SearchResponse, Searcher,
    Timings,
};
pub use telemetry::{EmbedTotals, QueryOutcome, Telemetry};

//! The catalog: SQLite (WAL, `synchronous = FULL`) holding collections, documents, content-addressed
//! chunks, per-generation change logs, embedding versions and their vectors, jobs, and eval runs.
//! One file per table group; this module only declares them and re-exports their types.
//!
//! One write transaction is one generation: [`Catalog::begin`] opens it, [`WriteTx::commit`] bumps
//! the collection's generation and records every chunk it touched, so derived indexes can replay it.

mod collections;
mod documents;
mod eval;
mod forget;
mod job_data;
mod jobs;
mod schema;
mod states;
mod vectors;
mod versions;
mod write;

pub use collections::{CollectionRow, HOLD_TTL_SECS, check_collection_name};
pub use documents::{ChunkRecord, DocState, DocumentRow, MAX_CONTEXTS, Occurrence};
pub use eval::{EvalRun, EvalRunSummary, GoldenQuery, GoldenSummary};
pub use forget::{CollectionDeleted, Forgotten};
pub use job_data::{
    GateMode, GateReport, GateSet, JobParams, JobResult, RechunkResult, ReindexResult,
    RequantizeResult,
};
pub use jobs::Job;
pub(crate) use schema::Catalog;
#[cfg(test)]
pub(crate) use schema::SCHEMA_VERSION;
pub(crate) use schema::now;
pub use states::{JobKind, JobState, VersionState};
pub use versions::{VersionRow, version_id};
pub use write::{UpsertOutcome, WriteTx};

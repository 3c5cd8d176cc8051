//! Ingest: everything quarry reads goes in here, and [`ingest_inputs`] decides how each input is
//! read. Documents (folders, text, Markdown, HTML, PDF, Word, JSONL: [`documents`]) are extracted
//! ([`extract`], [`html`], [`pdf`] and [`docx`], the binary readers under [`guarded`]), chunked
//! and embedded; vector files (`.parquet`: [`parquet`], [`byo_vectors`]) bring vectors computed
//! elsewhere for documents already ingested. [`chunk_files`] are the other direction: chunks
//! that lack vectors, written out to be embedded elsewhere.

mod binary;
mod byo_vectors;
pub mod chunk_files;
mod committer;
mod documents;
mod docx;
mod extract;
#[cfg(test)]
mod formats_tests;
#[cfg(test)]
mod fuzz_tests;
mod guarded;
mod html;
mod inputs;
pub mod parquet;
mod pdf;
pub mod spec_metadata;
mod summary;
mod walk;

pub use byo_vectors::{MAX_PROBLEMS, PUT_BATCH, VectorProblem, VectorsSummary};
pub use documents::{ingest, ingest_records, read_jsonl_bytes, upsert};
pub use extract::{Extracted, FileKind, Record, extract, format_of, record_document};
pub use inputs::{Ingested, ingest_inputs, is_vector_file};
pub use summary::{
    DEFAULT_EXTRACT_TIMEOUT, IngestOptions, IngestSummary, NoProgress, Problem, Progress,
};
pub use walk::{Walk, WalkedFile, parse_acl_file, walk};

//! The one entry point of ingest: [`ingest_inputs`] sorts the inputs it is given into documents
//! and vector files, and reads each kind the way it must be read.

use super::byo_vectors::{self, VectorsSummary};
use super::documents::ingest;
use super::summary::{IngestOptions, IngestSummary, Progress};
use crate::engine::Engine;
use crate::error::Result;
use quarry_core::EmbedderSpec;
use std::path::{Path, PathBuf};

/// Whether `path` is a vector file (`.parquet`, any case) rather than documents.
pub fn is_vector_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// What [`ingest_inputs`] did.
#[derive(Debug)]
pub struct Ingested {
    /// The summary of the documents, `None` when no input was documents.
    pub documents: Option<IngestSummary>,
    /// What loading the vector files did, or the error that stopped it (the vectors of the files
    /// before it, and of the failing file up to its error, stay loaded); `None` when no input was
    /// a vector file.
    pub vectors: Option<Result<VectorsSummary>>,
}

/// Ingests `inputs` into `opts.collection`: documents first (folders and files, as
/// [`ingest`]), then the vector files ([`is_vector_file`]) one after the other, stopping at the
/// first that fails. `vectors_spec` names the embedder that computed the vectors; without it each
/// file's schema metadata must say. An error of the documents is returned as such; an error of a
/// vector file is in [`Ingested::vectors`], next to the documents' summary.
pub fn ingest_inputs(
    engine: &Engine,
    inputs: &[PathBuf],
    opts: &IngestOptions,
    vectors_spec: Option<&EmbedderSpec>,
    progress: &dyn Progress,
) -> Result<Ingested> {
    let (vector_files, documents): (Vec<PathBuf>, Vec<PathBuf>) =
        inputs.iter().cloned().partition(|p| is_vector_file(p));
    let documents = if documents.is_empty() {
        None
    } else {
        Some(ingest(engine, &documents, opts, progress)?)
    };
    let vectors = (!vector_files.is_empty()).then(|| {
        let mut summary = VectorsSummary::default();
        for p in &vector_files {
            byo_vectors::load(engine, &opts.collection, p, vectors_spec, &mut summary)?;
        }
        Ok(summary)
    });
    Ok(Ingested { documents, vectors })
}

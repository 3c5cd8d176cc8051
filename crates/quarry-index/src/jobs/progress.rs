//! How a running job advances and stops: the embedding fill it runs a batch at a time (each
//! batch's vectors and the job's progress stored together, so a job that resumes after a crash
//! embeds only what is still missing), the check between batches for a cancellation or a
//! shutdown ([`Stop`]), and reading the job's row.

use crate::Engine;
use crate::catalog::{Job, VersionRow};
use crate::error::{Error, Result};
use quarry_core::{ContentHash, Embedder};
use std::sync::Arc;

/// Gives the texts (as embedded) of a batch of chunks.
pub(super) type TextsOf<'a> = dyn Fn(&[ContentHash]) -> Result<Vec<(ContentHash, String)>> + 'a;

/// Why a job stopped early.
pub(super) enum Stop {
    Cancelled,
    /// The process is shutting down: the job stays `running` and resumes at the next start.
    Interrupted,
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

/// Job `id`, or a not-found error.
pub fn job(engine: &Engine, id: &str) -> Result<Job> {
    engine.catalog().job(id)?.ok_or_else(|| Error::NotFound {
        what: "job",
        id: id.to_owned(),
    })
}

/// Whether the job must stop here: cancelled, or the process is shutting down.
pub(super) fn check_stop(engine: &Engine, id: &str) -> std::result::Result<(), Stop> {
    if engine.jobs_interrupted() {
        return Err(Stop::Interrupted);
    }
    if job(engine, id)?.cancel_requested {
        return Err(Stop::Cancelled);
    }
    Ok(())
}

/// Embeds the chunks `missing` (of the job's `total`) a batch at a time, `texts_of` giving a
/// batch's texts as embedded; each batch's vectors and the job's progress are stored in one
/// transaction, and cancellation or shutdown is checked between batches. Chunks already
/// stored when the job first started count as its cache hits.
#[allow(clippy::too_many_arguments)]
pub(super) fn fill(
    engine: &Engine,
    job: &Job,
    version: &VersionRow,
    embedder: &Arc<dyn Embedder>,
    total: u64,
    missing: &[ContentHash],
    progress: &dyn Fn(&Job),
    texts_of: &TextsOf<'_>,
) -> std::result::Result<(), Stop> {
    let mut processed = total - missing.len() as u64;
    let hits = if job.started_at.is_none() {
        processed
    } else {
        0
    };
    engine
        .catalog()
        .job_progress(&job.id, processed, total, 0, hits)?;
    progress(&self::job(engine, &job.id)?);
    for batch in missing.chunks(engine.options().embed_batch.max(1)) {
        check_stop(engine, &job.id)?;
        processed += batch.len() as u64;
        let texts = texts_of(batch)?;
        engine.embed_texts_and_store(
            version,
            embedder,
            &texts,
            Some((&job.id, processed, total)),
        )?;
        progress(&self::job(engine, &job.id)?);
    }
    Ok(())
}

//! The job queue: queueing a re-index or a re-chunk (at most one of them per collection at a
//! time), reading and cancelling jobs, and running them, one process at a time per job (a lock
//! file under `jobs/` in the data directory). A job left `running` by a process that died is
//! picked up again and resumes where its stored vectors end.

use super::progress::{Stop, job};
use super::{rechunk, reindex, requantize};
use crate::Engine;
use crate::catalog::{Job, JobKind, JobParams, JobResult, JobState};
use crate::error::{Error, Result};
use crate::vectors::Quantization;
use quarry_core::ChunkOptions;
use std::fs::File;

/// Queues a re-index of `collection` to the embedder named `embedder`. Refused when that
/// embedder is not configured, when its fingerprint is the active version's (nothing would
/// change), or when a re-index of the collection is already queued or running.
pub fn enqueue_reindex(engine: &Engine, collection: &str, embedder: &str) -> Result<Job> {
    engine.collection(collection)?;
    let valid = (1..=64).contains(&embedder.len())
        && embedder
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if !valid {
        let shown: String = embedder.chars().take(64).collect();
        return Err(Error::Input(format!(
            "embedder name {shown:?}{}: use 1 to 64 letters, digits, `_`, `-` or `.`, as in [embedders.NAME]",
            if embedder.chars().count() > 64 {
                "…"
            } else {
                ""
            }
        )));
    }
    let e = engine.resolve(embedder)?.ok_or_else(|| {
        Error::Input(format!(
            "embedder `{embedder}` makes no vectors; name a [embedders.NAME] table, `local` or `hash`"
        ))
    })?;
    if let Some(active) = engine.catalog().active_version(collection)?
        && active.fingerprint == e.fingerprint()
    {
        return Err(Error::Input(format!(
            "collection `{collection}` is already served by version {} of that embedder; nothing to re-index",
            active.id
        )));
    }
    insert_exclusive(
        engine,
        JobKind::Reindex,
        collection,
        JobParams::Reindex {
            embedder: embedder.to_owned(),
        },
    )
}

/// Queues a re-chunk of `collection` with `options`: every document split anew, the new
/// chunks embedded with the active version's embedder (cache first), then BM25 and vectors
/// swapped to them in one generation. Refused when the collection already uses `options`, or
/// while another re-index or re-chunk of it is queued or running.
pub fn enqueue_rechunk(engine: &Engine, collection: &str, options: ChunkOptions) -> Result<Job> {
    options.validate()?;
    let current = engine.collection(collection)?.chunk_options;
    if current == options {
        return Err(Error::Input(format!(
            "collection `{collection}` is already chunked with these options (max_tokens {}, overlap {}); nothing to re-chunk",
            options.max_tokens, options.overlap
        )));
    }
    let params = JobParams::Rechunk {
        chunk: options,
        from: current,
    };
    insert_exclusive(engine, JobKind::Rechunk, collection, params)
}

/// Queues a requantize of `collection`: its active version's vector index built anew with
/// `quantization` from the stored vectors (nothing embedded), switched in when done. Refused
/// when the collection has no active version, when its index already has that quantization,
/// or while another job rebuilds the collection.
pub fn enqueue_requantize(
    engine: &Engine,
    collection: &str,
    quantization: Quantization,
) -> Result<Job> {
    enqueue_index_build(engine, collection, Some(quantization))
}

/// Queues a rebuild of `collection`'s vector index: the requantize job with the quantization
/// the index has, so the index is built anew from the stored vectors with the `[vector]`
/// settings of now (`m`, `ef_construction`, `segment_points`), and switched in when done.
pub fn enqueue_rebuild_index(engine: &Engine, collection: &str) -> Result<Job> {
    enqueue_index_build(engine, collection, None)
}

/// A requantize to `quantization`, or (`None`) a rebuild with the index's own.
fn enqueue_index_build(
    engine: &Engine,
    collection: &str,
    quantization: Option<Quantization>,
) -> Result<Job> {
    engine.collection(collection)?;
    let Some(version) = engine.catalog().active_version(collection)? else {
        return Err(Error::Input(format!(
            "collection `{collection}` has no vectors (no active embedding version); nothing to rebuild"
        )));
    };
    let from = engine
        .options()
        .vector
        .with_index(&version.index)
        .quantization;
    if quantization == Some(from) {
        return Err(Error::Input(format!(
            "the vector index of `{collection}` (version {}) is already quantized `{}`; to build \
             it again with the current [vector] settings, rebuild it (`quarry reindex \
             --rebuild-index`, or `{{\"rebuild_index\": true}}` over HTTP)",
            version.id,
            from.as_str()
        )));
    }
    let params = JobParams::Requantize {
        version: version.id,
        quantization: quantization.unwrap_or(from),
        from,
    };
    insert_exclusive(engine, JobKind::Requantize, collection, params)
}

/// Queues a job unless another re-index, re-chunk or requantize of the collection is queued
/// or running.
fn insert_exclusive(
    engine: &Engine,
    kind: JobKind,
    collection: &str,
    params: JobParams,
) -> Result<Job> {
    match engine.catalog().insert_job(
        kind,
        collection,
        &params,
        &[JobKind::Reindex, JobKind::Rechunk, JobKind::Requantize],
    )? {
        Ok(job) => Ok(job),
        Err(j) => Err(Error::Conflict(format!(
            "job {} ({}, {}) is already rebuilding collection `{collection}`; wait for it, cancel it \
             (`quarry jobs cancel {}`), or resume it if it was interrupted (`quarry jobs resume`)",
            j.id, j.kind, j.state, j.id
        ))),
    }
}

/// Jobs, oldest first; of one collection when given.
pub fn list(engine: &Engine, collection: Option<&str>) -> Result<Vec<Job>> {
    engine.catalog().jobs(collection, &[])
}

/// Cancels a queued job at once and a running one at its next batch.
pub fn cancel(engine: &Engine, id: &str) -> Result<Job> {
    engine
        .catalog()
        .cancel_job(id)?
        .ok_or_else(|| Error::NotFound {
            what: "job",
            id: id.to_owned(),
        })
}

/// The oldest job waiting to run: queued, or left `running` by a process that died (no
/// process holds its lock).
pub fn next(engine: &Engine) -> Result<Option<Job>> {
    let waiting = engine.catalog().jobs(None, &JobState::PENDING)?;
    for job in waiting {
        if job.state == JobState::Queued {
            return Ok(Some(job));
        }
        if let Some(lock) = try_lock(engine, &job.id)? {
            drop(lock);
            return Ok(Some(job));
        }
    }
    Ok(None)
}

/// The job's lock file, locked, or `None` when another process (or thread) runs the job.
fn try_lock(engine: &Engine, id: &str) -> Result<Option<File>> {
    let dir = engine.dir().join("jobs");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join(format!("{id}.lock"));
    let file = crate::engine::state::open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// Runs job `id` in this thread until it ends, calling `progress` after every batch. A job
/// interrupted before (its process died) resumes where its stored vectors end. Returns the
/// job as it ended; a job another process is running is `Busy`.
pub fn run(engine: &Engine, id: &str, progress: &dyn Fn(&Job)) -> Result<Job> {
    engine.catalog_checked()?;
    let Some(_lock) = try_lock(engine, id)? else {
        return Err(Error::Busy(format!(
            "job {id} is running in another process"
        )));
    };
    let current = job(engine, id)?;
    if !current.state.is_pending() {
        return Ok(current);
    }
    if current.cancel_requested {
        if current.kind == JobKind::Reindex {
            engine.fail_building(&current.collection)?;
        }
        engine
            .catalog()
            .end_job(id, JobState::Cancelled, None, None)?;
        return job(engine, id);
    }
    engine.catalog().start_job(id)?;
    tracing::info!(job = id, kind = %current.kind, collection = %current.collection, "job started");
    let outcome = match current.kind {
        JobKind::Rechunk => rechunk::run(engine, &current, progress).map(JobResult::Rechunk),
        JobKind::Reindex => reindex::run(engine, &current, progress).map(JobResult::Reindex),
        JobKind::Requantize => {
            requantize::run(engine, &current, progress).map(JobResult::Requantize)
        }
    };
    match outcome {
        Ok(result) => {
            engine
                .catalog()
                .end_job(id, JobState::Succeeded, None, Some(&result))?;
            let result = serde_json::to_value(&result).unwrap_or_default();
            tracing::info!(job = id, %result, "re-index finished");
        }
        Err(Stop::Interrupted) => {
            tracing::info!(
                job = id,
                "re-index interrupted by shutdown; it resumes at the next start"
            );
        }
        Err(Stop::Cancelled) => {
            engine
                .catalog()
                .end_job(id, JobState::Cancelled, None, None)?;
            tracing::info!(job = id, "re-index cancelled");
        }
        Err(Stop::Failed(e)) => {
            engine
                .catalog()
                .end_job(id, JobState::Failed, Some(&e.to_string()), None)?;
            tracing::warn!(job = id, error = %e, "re-index failed");
        }
    }
    job(engine, id)
}

/// Runs every job waiting to run, oldest first, until none is left or the engine interrupts
/// its jobs; returns how many ran.
pub fn run_pending(engine: &Engine) -> Result<usize> {
    engine.catalog_checked()?;
    let mut n = 0;
    while !engine.jobs_interrupted()
        && let Some(job) = next(engine)?
    {
        match run(engine, &job.id, &|_| {}) {
            Ok(_) => n += 1,
            // another process took it between the check and the lock
            Err(e) if e.kind() == crate::ErrorKind::Busy => break,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

//! The requantize job: the active version's vector index built anew with another quantization,
//! from the vectors the catalog stores (nothing is embedded), a page at a time in a folder of
//! its own while the old index serves, then switched in under the writer lock
//! ([`Engine::requantize_commit`]). A job that resumes after a crash starts its build over.

use super::progress::{Stop, check_stop, job};
use crate::Engine;
use crate::catalog::{Job, JobParams, RequantizeResult, VersionRow};
use crate::error::Error;
use crate::vectors::{IndexParams, Quantization, VectorIndex};

/// Runs requantize `job` to its end, or to a [`Stop`].
pub(super) fn run(
    engine: &Engine,
    job: &Job,
    progress: &dyn Fn(&Job),
) -> std::result::Result<RequantizeResult, Stop> {
    let collection = job.collection.as_str();
    let JobParams::Requantize {
        version: id,
        quantization,
        ..
    } = &job.params
    else {
        return Err(Stop::Failed(Error::Corrupt(format!(
            "job {}: no quantization in its params",
            job.id
        ))));
    };
    let version = match engine.catalog().active_version(collection)? {
        Some(v) if &v.id == id => v,
        _ => {
            return Err(Stop::Failed(Error::Input(format!(
                "version {id} is no longer the active version of `{collection}`; queue the requantize again"
            ))));
        }
    };
    let params = IndexParams {
        quantization: Some(*quantization),
    };
    // The job's own folder: a resumed job finds what it left and starts over, unless it had
    // switched the version to that folder before it was interrupted.
    let folder = format!("{id}@{}-{}", quantization.as_str(), job.id);
    if let Some(done) = engine.requantized_already(collection, &version, params, &folder)? {
        return Ok(done);
    }
    let dir = engine.version_dir(collection, &folder);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    // Nothing of a build that did not end in the switch stays on disk.
    let built = build(engine, job, &version, params, &dir, progress);
    let outcome = built.and_then(|(index, without)| {
        check_stop(engine, &job.id)?;
        let mut result = engine.requantize_commit(collection, id, params, &folder, index)?;
        result.without_vector = without;
        Ok(result)
    });
    if outcome.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

/// The new index in `dir`, from the stored vectors a page at a time (progress stored and the
/// job's cancellation checked after each page), and how many chunks had no stored vector.
fn build(
    engine: &Engine,
    job: &Job,
    version: &VersionRow,
    params: IndexParams,
    dir: &std::path::Path,
    progress: &dyn Fn(&Job),
) -> std::result::Result<(VectorIndex, u64), Stop> {
    let collection = job.collection.as_str();
    let vector = engine.options().vector.with_index(&params);
    let generation = engine.collection(collection)?.generation;
    let mut stop = None;
    let mut page = |done, total| {
        // (the catalog's guard is dropped before `progress` runs: it may write)
        let stored = engine.catalog().job_progress(&job.id, done, total, 0, 0);
        let checked = stored.map_err(Stop::Failed).and_then(|()| {
            progress(&self::job(engine, &job.id)?);
            check_stop(engine, &job.id)
        });
        match checked {
            Ok(()) => true,
            Err(s) => {
                stop = Some(s);
                false
            }
        }
    };
    let built = if vector.quantization != Quantization::None {
        // segments sealed and let go as they fill; at the end every point is in one
        engine.build_vectors_bulk(collection, dir, vector, version, generation, &mut page)?
    } else {
        let index = VectorIndex::empty(dir, version.spec.dimensions, vector)?;
        let fingerprint = &version.fingerprint;
        engine
            .sync_vectors_paged(collection, &index, fingerprint, generation, &mut page)?
            .map(|without| (index, without))
    };
    built.ok_or_else(|| stop.unwrap_or(Stop::Interrupted))
}

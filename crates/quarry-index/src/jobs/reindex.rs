//! The re-index job: a new embedding version of a collection, built in the shadow of the active
//! one, which keeps serving.
//! 1. **Fill**: every chunk without a stored vector of the new fingerprint is embedded, a batch
//!    at a time ([`super::progress`]); the stored vectors are the checkpoint.
//! 2. **Shadow index**: the version's HNSW graph is built from stored vectors in its own folder.
//! 3. **Eval gate** ([`crate::eval::gate`]): the new version is promoted only if its nDCG@10 is
//!    at least the active's minus `reindex_max_ndcg_drop` in both modes of every golden set.
//!    Otherwise it is left `ready`, with both runs named in the job's result.
//! 4. **Cutover** ([`Engine::promote`]): under the writer lock, one step for readers.

use super::progress::{Stop, check_stop, fill, job};
use crate::catalog::{Job, ReindexResult, VersionRow, VersionState};
use crate::error::Error;
use crate::eval::gate;
use crate::{ActiveEmbedder, Engine};
use quarry_core::{ContentHash, Embedder};
use std::sync::Arc;

/// Runs re-index `job` to its end, or to a [`Stop`]; a version left `building` by a cancelled
/// or failed job is marked `failed`.
pub(super) fn run(
    engine: &Engine,
    job: &Job,
    progress: &dyn Fn(&Job),
) -> std::result::Result<ReindexResult, Stop> {
    let collection = job.collection.as_str();
    let name = job
        .params
        .embedder()
        .ok_or_else(|| Error::Corrupt(format!("job {}: no embedder in its params", job.id)))?;
    let embedder = engine
        .resolve(name)?
        .ok_or_else(|| Error::Input(format!("embedder `{name}` makes no vectors")))?;
    let version = engine
        .catalog()
        .building_version(collection, name, embedder.spec())?;
    if version.state == VersionState::Active {
        // The process died after the switch and before the job's end was recorded.
        return Ok(ReindexResult {
            version: version.id,
            promoted: true,
            gate: None,
            embedded: None,
            cache_hits: None,
            note: Some(
                "the version was already active: the job had switched before it was interrupted"
                    .to_owned(),
            ),
        });
    }
    let outcome = build_and_promote(engine, job, &version, &embedder, progress);
    if matches!(outcome, Err(Stop::Cancelled | Stop::Failed(_))) {
        engine.fail_building(collection)?;
    }
    outcome
}

fn build_and_promote(
    engine: &Engine,
    job: &Job,
    version: &VersionRow,
    embedder: &Arc<dyn Embedder>,
    progress: &dyn Fn(&Job),
) -> std::result::Result<ReindexResult, Stop> {
    let collection = job.collection.as_str();
    // 1. fill the embedding cache for the new fingerprint
    let hashes = engine.catalog().all_chunk_hashes(collection)?;
    let have = engine
        .catalog()
        .have_vectors(&version.fingerprint, &hashes)?;
    let mut missing: Vec<ContentHash> = hashes
        .iter()
        .filter(|h| !have.contains(h))
        .copied()
        .collect();
    missing.sort();
    fill(
        engine,
        job,
        version,
        embedder,
        hashes.len() as u64,
        &missing,
        progress,
        &|batch| engine.catalog().embed_texts(collection, batch),
    )?;
    // 2. the shadow index, from stored vectors, in the version's own folder
    let shadow = engine.build_shadow(collection, version)?;
    check_stop(engine, &job.id)?;
    // 3. the eval gate
    let candidate = ActiveEmbedder {
        version: version.clone(),
        embedder: Ok(embedder.clone()),
    };
    let gate = gate::run(engine, collection, &job.id, &|| {
        engine.shadow_searcher(collection, &shadow, &candidate)
    })?;
    // 4. cutover, or the version waits for a person
    let promoted = if gate.lets_through() {
        engine.promote(collection, &candidate, shadow.clone())?;
        true
    } else {
        engine.hold_back(collection, version, &shadow)?;
        false
    };
    let job_now = self::job(engine, &job.id)?;
    Ok(ReindexResult {
        version: version.id.clone(),
        promoted,
        gate: Some(gate),
        embedded: Some(job_now.embedded),
        cache_hits: Some(job_now.cache_hits),
        note: None,
    })
}

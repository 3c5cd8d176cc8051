//! The re-chunk job: every document split with new chunk options, the new chunks embedded with
//! the active version's embedder in the shadow of the old ones (cache first; resumable), then
//! BM25 and vectors switched to them in one generation ([`Engine::rechunk_commit`]).

use super::progress::{Stop, check_stop, fill, job};
use crate::Engine;
use crate::catalog::{Job, JobParams, RechunkResult};
use crate::error::Error;
use quarry_core::ContentHash;
use std::collections::HashMap;

/// Runs re-chunk `job` to its end, or to a [`Stop`].
pub(super) fn run(
    engine: &Engine,
    job: &Job,
    progress: &dyn Fn(&Job),
) -> std::result::Result<RechunkResult, Stop> {
    let collection = job.collection.as_str();
    let JobParams::Rechunk { chunk: options, .. } = job.params else {
        return Err(Stop::Failed(Error::Corrupt(format!(
            "job {}: no chunk options in its params",
            job.id
        ))));
    };
    let chunker = engine.chunker_with(collection, options)?;
    let active = match engine.catalog().active_version(collection)? {
        Some(v) => match engine.embedder_of(&v)? {
            Ok(e) => Some((v, e)),
            Err(_) => {
                return Err(Stop::Failed(Error::Input(format!(
                    "embedder `{}` no longer has the fingerprint of version {}; re-index to it before re-chunking",
                    v.embedder, v.id
                ))));
            }
        },
        None => None,
    };
    // 1. embed the new chunks, in the shadow of the old ones (cache first; resumable)
    let docs = engine.chunk_all(collection, &chunker)?;
    if let Some((version, embedder)) = &active {
        let (total, missing) = engine.missing_texts(version, &docs)?;
        let texts: HashMap<ContentHash, String> = missing.into_iter().collect();
        let mut hashes: Vec<ContentHash> = texts.keys().copied().collect();
        hashes.sort();
        fill(
            engine,
            job,
            version,
            embedder,
            total as u64,
            &hashes,
            progress,
            &|batch| Ok(batch.iter().map(|h| (*h, texts[h].clone())).collect()),
        )?;
    }
    check_stop(engine, &job.id)?;
    // 2. one generation, under the writer lock
    let before = engine.catalog().counts(collection)?.1;
    let generation = engine.rechunk_commit(collection, &chunker, &options)?;
    let after = engine.catalog().counts(collection)?.1;
    let job_now = self::job(engine, &job.id)?;
    tracing::info!(
        collection,
        chunks_before = before,
        chunks_after = after,
        "re-chunked"
    );
    Ok(RechunkResult {
        chunk: options,
        generation,
        chunks_before: before,
        chunks_after: after,
        embedded: job_now.embedded,
        cache_hits: job_now.cache_hits,
    })
}

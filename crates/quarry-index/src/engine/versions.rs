//! Embedding versions and re-index jobs.
//!
//! A re-index builds a new embedding version of a collection in the shadow of the active one,
//! which keeps serving:
//! 1. **Fill**: every chunk of the collection without a stored vector of the new fingerprint is
//!    embedded, a batch at a time; each batch's vectors are stored (the embedding cache) and the
//!    job's progress written before the next batch. The stored vectors are the checkpoint: a job
//!    that resumes after a crash embeds only what is still missing.
//! 2. **Shadow index**: the version's HNSW graph is built from stored vectors in its own folder.
//! 3. **Eval gate**: with golden sets, each runs on the active and on the shadow version (`vector`
//!    and `hybrid`, recorded as eval runs); the new version is promoted only if its nDCG@10 is at
//!    least the active's minus `reindex_max_ndcg_drop` in both modes of every set. Otherwise it is
//!    left `ready`, with both runs named in the job's result.
//! 4. **Cutover**, under the writer lock so no write commits meanwhile: chunks written during
//!    the job are embedded (only those), the shadow index is brought to the catalog's generation,
//!    the catalog switches the active version, and the collection's published indexes are
//!    replaced in one step. A searcher taken before keeps the old version to its end, one taken
//!    after sees the new one: no query mixes them.
//!
//! [`Engine::activate_version`] promotes or rolls back to a version whose vectors are stored
//! (nothing is embedded unless chunks were added since it was last active).

use super::{ActiveEmbedder, Engine, Indexes, VersionInfo};
use crate::catalog::{
    GateMode, GateReport, GateSet, Job, JobKind, JobParams, JobResult, JobState, RechunkResult,
    ReindexResult, VersionRow, VersionState,
};
use crate::error::{Error, Result};
use crate::measure::Plan;
use crate::searcher::Searcher;
use crate::vectors::VectorIndex;
use quarry_core::{ChunkOptions, ContentHash, Embedder, InputKind, Mode, Principal};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::sync::Arc;

/// Gives the texts (as embedded) of a batch of chunks.
type TextsOf<'a> = dyn Fn(&[ContentHash]) -> Result<Vec<(ContentHash, String)>> + 'a;

/// Why a job stopped early.
enum Stop {
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

/// Chunks in a version's canary set.
pub const CANARY_SIZE: usize = 32;

/// What re-embedding a version's canary set found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CanaryReport {
    pub collection: String,
    pub version: String,
    pub embedder: String,
    /// Canary chunks re-embedded.
    pub checked: usize,
    /// The lowest cosine between a canary's stored vector and its vector now.
    pub min_cosine: f64,
    /// `min_cosine` is below `canary_min_cosine`: the model behind the embedder changed.
    pub drifted: bool,
}

/// A collection's canary check: its report (`None` without vectors), or why it could not run.
pub type CanaryOutcome = std::result::Result<Option<CanaryReport>, String>;

/// A collection whose configured embedder no longer has its active version's fingerprint.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelChange {
    pub collection: String,
    pub embedder: String,
    pub active_version: String,
    pub active_fingerprint: String,
    pub configured_fingerprint: String,
}

impl Engine {
    /// Queues a re-index of `collection` to the embedder named `embedder`. Refused when that
    /// embedder is not configured, when its fingerprint is the active version's (nothing would
    /// change), or when a re-index of the collection is already queued or running.
    pub fn enqueue_reindex(&self, collection: &str, embedder: &str) -> Result<Job> {
        self.collection(collection)?;
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
        let e = self.resolve(embedder)?.ok_or_else(|| {
            Error::Input(format!(
                "embedder `{embedder}` makes no vectors; name a [embedders.NAME] table, `local` or `hash`"
            ))
        })?;
        if let Some(active) = self.catalog().active_version(collection)?
            && active.fingerprint == e.fingerprint()
        {
            return Err(Error::Input(format!(
                "collection `{collection}` is already served by version {} of that embedder; nothing to re-index",
                active.id
            )));
        }
        self.insert_exclusive_job(
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
    pub fn enqueue_rechunk(&self, collection: &str, options: ChunkOptions) -> Result<Job> {
        options.validate()?;
        let current = self.collection(collection)?.chunk_options;
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
        self.insert_exclusive_job(JobKind::Rechunk, collection, params)
    }

    /// Queues a job unless another re-index or re-chunk of the collection is queued or running.
    fn insert_exclusive_job(
        &self,
        kind: JobKind,
        collection: &str,
        params: JobParams,
    ) -> Result<Job> {
        match self.catalog().insert_job(
            kind,
            collection,
            &params,
            &[JobKind::Reindex, JobKind::Rechunk],
        )? {
            Ok(job) => Ok(job),
            Err(j) => Err(Error::Busy(format!(
                "job {} ({}, {}) is already rebuilding collection `{collection}`; wait for it, cancel it \
                 (`quarry jobs cancel {}`), or resume it if it was interrupted (`quarry jobs resume`)",
                j.id, j.kind, j.state, j.id
            ))),
        }
    }

    pub fn job(&self, id: &str) -> Result<Job> {
        self.catalog().job(id)?.ok_or_else(|| Error::NotFound {
            what: "job",
            id: id.to_owned(),
        })
    }

    /// Jobs, oldest first; of one collection when given.
    pub fn jobs(&self, collection: Option<&str>) -> Result<Vec<Job>> {
        self.catalog().jobs(collection, &[])
    }

    /// Cancels a queued job at once and a running one at its next batch.
    pub fn cancel_job(&self, id: &str) -> Result<Job> {
        self.catalog()
            .cancel_job(id)?
            .ok_or_else(|| Error::NotFound {
                what: "job",
                id: id.to_owned(),
            })
    }

    /// The oldest job waiting to run: queued, or left `running` by a process that died (no
    /// process holds its lock).
    pub fn next_job(&self) -> Result<Option<Job>> {
        let waiting = self.catalog().jobs(None, &JobState::PENDING)?;
        for job in waiting {
            if job.state == JobState::Queued {
                return Ok(Some(job));
            }
            if let Some(lock) = self.try_lock_job(&job.id)? {
                drop(lock);
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// The job's lock file, locked, or `None` when another process (or thread) runs the job.
    fn try_lock_job(&self, id: &str) -> Result<Option<File>> {
        let dir = self.dir.join("jobs");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{id}.lock"));
        let file = super::open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// Runs job `id` in this thread until it ends, calling `progress` after every batch. A job
    /// interrupted before (its process died) resumes where its stored vectors end. Returns the
    /// job as it ended; a job another process is running is `Busy`.
    pub fn run_job(&self, id: &str, progress: &dyn Fn(&Job)) -> Result<Job> {
        let Some(_lock) = self.try_lock_job(id)? else {
            return Err(Error::Busy(format!(
                "job {id} is running in another process"
            )));
        };
        let job = self.job(id)?;
        if !job.state.is_pending() {
            return Ok(job);
        }
        if job.cancel_requested {
            if job.kind == JobKind::Reindex {
                self.fail_building(&job.collection)?;
            }
            self.catalog()
                .end_job(id, JobState::Cancelled, None, None)?;
            return self.job(id);
        }
        self.catalog().start_job(id)?;
        tracing::info!(job = id, kind = %job.kind, collection = %job.collection, "job started");
        let outcome = match job.kind {
            JobKind::Rechunk => self.rechunk(&job, progress).map(JobResult::Rechunk),
            JobKind::Reindex => self.reindex(&job, progress).map(JobResult::Reindex),
        };
        match outcome {
            Ok(result) => {
                self.catalog()
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
                self.catalog()
                    .end_job(id, JobState::Cancelled, None, None)?;
                tracing::info!(job = id, "re-index cancelled");
            }
            Err(Stop::Failed(e)) => {
                self.catalog()
                    .end_job(id, JobState::Failed, Some(&e.to_string()), None)?;
                tracing::warn!(job = id, error = %e, "re-index failed");
            }
        }
        self.job(id)
    }

    /// Runs every job waiting to run, oldest first, until none is left; returns how many ran.
    pub fn run_pending_jobs(&self) -> Result<usize> {
        let mut n = 0;
        while !self
            .interrupt_jobs
            .load(std::sync::atomic::Ordering::SeqCst)
            && let Some(job) = self.next_job()?
        {
            match self.run_job(&job.id, &|_| {}) {
                Ok(_) => n += 1,
                // another process took it between the check and the lock
                Err(e) if e.kind() == crate::ErrorKind::Busy => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Every document of `collection` split with `chunker`: `(doc_id, title, chunks)`.
    fn chunk_all(
        &self,
        collection: &str,
        chunker: &quarry_core::Chunker,
    ) -> Result<Vec<(String, String, Vec<quarry_core::Chunk>)>> {
        Ok(self
            .catalog()
            .chunkable_documents(collection)?
            .into_iter()
            .map(|(id, title, text, format)| {
                let chunks = chunker.chunk(&title, &text, format);
                (id, title, chunks)
            })
            .collect())
    }

    /// The texts (as embedded) of `docs`' chunks that have no stored vector of `version`.
    /// Embeds the chunks `missing` (of the job's `total`) a batch at a time, `texts_of` giving a
    /// batch's texts as embedded; each batch's vectors and the job's progress are stored in one
    /// transaction, and cancellation or shutdown is checked between batches. Chunks already
    /// stored when the job first started count as its cache hits.
    #[allow(clippy::too_many_arguments)]
    fn fill(
        &self,
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
        self.catalog()
            .job_progress(&job.id, processed, total, 0, hits)?;
        progress(&self.job(&job.id)?);
        for batch in missing.chunks(self.options.embed_batch.max(1)) {
            self.check_stop(&job.id)?;
            processed += batch.len() as u64;
            let texts = texts_of(batch)?;
            self.embed_texts_and_store(
                version,
                embedder,
                &texts,
                Some((&job.id, processed, total)),
            )?;
            progress(&self.job(&job.id)?);
        }
        Ok(())
    }

    fn missing_texts(
        &self,
        version: &VersionRow,
        docs: &[(String, String, Vec<quarry_core::Chunk>)],
    ) -> Result<(usize, Vec<(ContentHash, String)>)> {
        let mut texts: std::collections::BTreeMap<ContentHash, String> = Default::default();
        for (_, title, chunks) in docs {
            for c in chunks {
                texts
                    .entry(c.hash)
                    .or_insert_with(|| quarry_core::embed_text(title, &c.text));
            }
        }
        let hashes: Vec<ContentHash> = texts.keys().copied().collect();
        let have = self.catalog().have_vectors(&version.fingerprint, &hashes)?;
        let total = texts.len();
        Ok((
            total,
            texts
                .into_iter()
                .filter(|(h, _)| !have.contains(h))
                .collect(),
        ))
    }

    fn rechunk(
        &self,
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
        let chunker = self.chunker_with(collection, options)?;
        let active = match self.catalog().active_version(collection)? {
            Some(v) => match self.resolve(&v.embedder)? {
                Some(e) if e.fingerprint() == v.fingerprint => Some((v, e)),
                _ => {
                    return Err(Stop::Failed(Error::Input(format!(
                        "embedder `{}` no longer has the fingerprint of version {}; re-index to it before re-chunking",
                        v.embedder, v.id
                    ))));
                }
            },
            None => None,
        };
        // 1. embed the new chunks, in the shadow of the old ones (cache first; resumable)
        let docs = self.chunk_all(collection, &chunker)?;
        if let Some((version, embedder)) = &active {
            let (total, missing) = self.missing_texts(version, &docs)?;
            let texts: HashMap<ContentHash, String> = missing.into_iter().collect();
            let mut hashes: Vec<ContentHash> = texts.keys().copied().collect();
            hashes.sort();
            self.fill(
                job,
                version,
                embedder,
                total as u64,
                &hashes,
                progress,
                &|batch| Ok(batch.iter().map(|h| (*h, texts[h].clone())).collect()),
            )?;
        }
        self.check_stop(&job.id)?;
        // 2. one generation, under the writer lock: documents written during the job are split
        //    anew too, and BM25 and vectors are published together
        let before = self.catalog().counts(collection)?.1;
        let generation = self.with_write_lock(|| {
            let ix = self.recover(collection, self.open_indexes(collection)?, true)?;
            let docs = self.chunk_all(collection, &chunker)?;
            // The version serving now (under the lock) gets the new chunks' vectors, whichever
            // was active when the job started.
            if let Some(serving) = &ix.active {
                let embedder = serving.embedder.clone().map_err(Error::Embed)?;
                let (_, late) = self.missing_texts(&serving.version, &docs)?;
                for batch in late.chunks(self.options.embed_batch.max(1)) {
                    self.embed_texts_and_store(&serving.version, &embedder, batch, None)?;
                }
            }
            let committed = {
                let mut catalog = self.catalog();
                let mut tx = catalog.begin(collection)?;
                for (id, title, chunks) in &docs {
                    tx.rechunk(id, title, chunks)?;
                }
                tx.set_chunk_options(&options)?;
                tx.commit()?
            };
            let Some((generation, touched)) = committed else {
                return Ok(None);
            };
            self.write_generation(collection, &ix, generation, &touched)?;
            Ok(Some(generation))
        })?;
        let after = self.catalog().counts(collection)?.1;
        let job_now = self.job(&job.id)?;
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

    fn reindex(
        &self,
        job: &Job,
        progress: &dyn Fn(&Job),
    ) -> std::result::Result<ReindexResult, Stop> {
        let collection = job.collection.as_str();
        let name = job
            .params
            .embedder()
            .ok_or_else(|| Error::Corrupt(format!("job {}: no embedder in its params", job.id)))?;
        let embedder = self
            .resolve(name)?
            .ok_or_else(|| Error::Input(format!("embedder `{name}` makes no vectors")))?;
        let version = self
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
        let outcome = self.build_and_promote(job, &version, &embedder, progress);
        if matches!(outcome, Err(Stop::Cancelled | Stop::Failed(_))) {
            self.fail_building(collection)?;
        }
        outcome
    }

    /// Marks the collection's `building` versions `failed` (its one re-index job stopped); an
    /// active or ready version is never touched.
    fn fail_building(&self, collection: &str) -> Result<()> {
        let catalog = self.catalog();
        for v in catalog.versions(collection)? {
            if v.state == VersionState::Building {
                catalog.set_version_state(collection, &v.id, VersionState::Failed)?;
            }
        }
        Ok(())
    }

    fn build_and_promote(
        &self,
        job: &Job,
        version: &VersionRow,
        embedder: &Arc<dyn Embedder>,
        progress: &dyn Fn(&Job),
    ) -> std::result::Result<ReindexResult, Stop> {
        let collection = job.collection.as_str();
        // 1. fill the embedding cache for the new fingerprint
        let hashes = self.catalog().all_chunk_hashes(collection)?;
        let have = self.catalog().have_vectors(&version.fingerprint, &hashes)?;
        let mut missing: Vec<ContentHash> = hashes
            .iter()
            .filter(|h| !have.contains(h))
            .copied()
            .collect();
        missing.sort();
        self.fill(
            job,
            version,
            embedder,
            hashes.len() as u64,
            &missing,
            progress,
            &|batch| self.catalog().embed_texts(collection, batch),
        )?;
        // 2. the shadow index, from stored vectors, in the version's own folder
        let dir = self.version_dir(collection, &version.id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        let shadow = Arc::new(VectorIndex::open(
            &dir,
            version.spec.dimensions,
            self.options.vector,
        )?);
        let generation = self.collection(collection)?.generation;
        self.sync_vectors(collection, &shadow, &version.fingerprint, generation)?;
        shadow.publish();
        self.check_stop(&job.id)?;
        // 3. the eval gate
        let candidate = ActiveEmbedder {
            version: version.clone(),
            embedder: Ok(embedder.clone()),
        };
        let gate = self.eval_gate(job, &shadow, &candidate)?;
        let passed = gate.lets_through();
        // 4. cutover, or the version waits for a person
        let promoted = if passed {
            self.with_write_lock(|| self.cut_over(collection, &candidate, shadow.clone()))?;
            true
        } else {
            // Brought to the catalog's generation under the writer lock first: a forget since
            // the build must not reach the dump.
            self.with_write_lock(|| {
                let generation = self.collection(collection)?.generation;
                self.sync_vectors(collection, &shadow, &version.fingerprint, generation)?;
                shadow.dump()
            })?;
            self.catalog()
                .set_version_state(collection, &version.id, VersionState::Ready)?;
            false
        };
        let job_now = self.job(&job.id)?;
        Ok(ReindexResult {
            version: version.id.clone(),
            promoted,
            gate: Some(gate),
            embedded: Some(job_now.embedded),
            cache_hits: Some(job_now.cache_hits),
            note: None,
        })
    }

    /// Whether the job must stop here: cancelled, or the process is shutting down.
    fn check_stop(&self, id: &str) -> std::result::Result<(), Stop> {
        if self
            .interrupt_jobs
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(Stop::Interrupted);
        }
        if self.job(id)?.cancel_requested {
            return Err(Stop::Cancelled);
        }
        Ok(())
    }

    /// Stops running jobs at their next batch, leaving them to resume at the next start (for a
    /// shutdown); no job starts after this.
    pub fn interrupt_jobs(&self) {
        self.interrupt_jobs
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Embeds `(chunk hash, text as embedded)` with `embedder` and stores the vectors under the
    /// version's fingerprint. Returns how many were embedded.
    /// With `job` (`(id, processed, total)` after this batch), the job's progress is stored in the
    /// same transaction as the vectors.
    pub(super) fn embed_texts_and_store(
        &self,
        version: &VersionRow,
        embedder: &Arc<dyn Embedder>,
        texts: &[(ContentHash, String)],
        job: Option<(&str, u64, u64)>,
    ) -> Result<u64> {
        if texts.is_empty() {
            return Ok(0);
        }
        let inputs: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
        let vectors = embedder
            .embed(&inputs, InputKind::Document)
            .map_err(|e| Error::Embed(e.to_string()))?;
        let dims = version.spec.dimensions;
        if vectors.len() != inputs.len() || vectors.iter().any(|v| v.len() != dims) {
            return Err(Error::Embed(format!(
                "embedder `{}` returned {} vectors for {} inputs (or the wrong dimension; {dims} expected)",
                version.embedder,
                vectors.len(),
                inputs.len()
            )));
        }
        let rows: Vec<(ContentHash, Vec<f32>)> = texts
            .iter()
            .zip(vectors)
            .map(|((h, _), mut v)| {
                quarry_core::embed::normalize(&mut v);
                (*h, v)
            })
            .collect();
        match job {
            Some((id, processed, total)) => {
                self.catalog()
                    .put_job_vectors(&version.fingerprint, &rows, id, processed, total)?
            }
            None => self.catalog().put_vectors(&version.fingerprint, &rows)?,
        }
        Ok(rows.len() as u64)
    }

    /// Brings `index` to the collection's chunks at `generation`: points of chunks that left
    /// become tombstones, chunks without a point get their stored vector of `fingerprint`.
    /// Compares the whole chunk set, so it does not depend on the change log.
    fn sync_vectors(
        &self,
        collection: &str,
        index: &VectorIndex,
        fingerprint: &quarry_core::Fingerprint,
        generation: u64,
    ) -> Result<()> {
        let current: HashSet<ContentHash> = self
            .catalog()
            .all_chunk_hashes(collection)?
            .into_iter()
            .collect();
        let removed: Vec<ContentHash> = index
            .keys()
            .into_iter()
            .filter(|h| !current.contains(h))
            .collect();
        let wanted: Vec<ContentHash> = current
            .iter()
            .filter(|h| !index.contains(h))
            .copied()
            .collect();
        let mut added: Vec<(ContentHash, Vec<f32>)> = self
            .catalog()
            .vectors(fingerprint, &wanted)?
            .into_iter()
            .collect();
        added.sort_by_key(|(h, _)| *h);
        let from = index.generation();
        index.apply(generation, &removed, &added)?;
        self.compact_after_forget(collection, index, from)
    }

    /// Runs every golden set of the job's collection on the active version and on the candidate
    /// (`vector` and `hybrid`, as an admin); `passed` unless some mode of some set lost more than
    /// `reindex_max_ndcg_drop` nDCG@10.
    fn eval_gate(
        &self,
        job: &Job,
        shadow: &Arc<VectorIndex>,
        candidate: &ActiveEmbedder,
    ) -> Result<GateReport> {
        let collection = job.collection.as_str();
        let sets = self.golden_sets(Some(collection))?;
        let max_drop = self.options.reindex_max_ndcg_drop;
        if sets.is_empty() {
            return Ok(GateReport {
                ran: false,
                passed: None,
                max_ndcg_drop: None,
                sets: None,
                note: Some("the collection has no golden set, so no eval gate ran".to_owned()),
            });
        }
        let active = self.searcher(collection)?;
        let current = self.indexes(&self.collection(collection)?)?;
        let shadow_ix = Indexes {
            bm25: current.bm25.clone(),
            vectors: Some(shadow.clone()),
            active: Some(candidate.clone()),
            publish: current.publish.clone(),
            incarnation: current.incarnation.clone(),
        };
        let new = Searcher::new(self.collection(collection)?, &shadow_ix, &self.options);
        let admin = Principal::local_admin();
        let plan = Plan {
            modes: if active.embedding_version().is_some() {
                vec![Mode::Vector, Mode::Hybrid]
            } else {
                vec![Mode::Hybrid]
            },
            fusion: active.default_fusion(),
            top_k: 100,
        };
        let mut new_plan = plan.clone();
        new_plan.modes = vec![Mode::Vector, Mode::Hybrid];
        let trigger = format!("reindex {}", job.id);
        let mut passed = true;
        let mut out = Vec::new();
        for set in sets {
            let (a, _) = self.evaluate_golden_on(&active, &set.name, &plan, &admin, &trigger)?;
            let (b, measured) =
                self.evaluate_golden_on(&new, &set.name, &new_plan, &admin, &trigger)?;
            // Answers the new version gave from BM25 alone (its provider failed) measure nothing
            // of it: the gate does not pass on them.
            let degraded: usize = measured.reports.values().map(|r| r.degraded).sum();
            if degraded > 0 {
                passed = false;
            }
            let mut modes = std::collections::BTreeMap::new();
            for mode in ["vector", "hybrid"] {
                let (Some(new_v), old_v) = (ndcg_of(&b, mode), ndcg_of(&a, mode)) else {
                    continue;
                };
                // A collection without vectors before (BM25 only) compares with its hybrid answer.
                let Some(old_v) = old_v.or_else(|| ndcg_of(&a, "hybrid")) else {
                    continue;
                };
                let ok = new_v >= old_v - max_drop;
                passed &= ok;
                modes.insert(
                    mode.to_owned(),
                    GateMode {
                        active: old_v,
                        new: new_v,
                        ok,
                    },
                );
            }
            if modes.is_empty() {
                passed = false;
            }
            out.push(GateSet {
                compare: format!("quarry eval compare {} {}", a.id, b.id),
                golden: set.name,
                active_run: a.id,
                new_run: b.id,
                ndcg_at_10: modes,
                degraded_answers: degraded as u64,
            });
        }
        Ok(GateReport {
            ran: true,
            passed: Some(passed),
            max_ndcg_drop: Some(max_drop),
            sets: Some(out),
            note: None,
        })
    }

    /// Under the writer lock: embeds the chunks written since the shadow index was built, brings
    /// it to the catalog's generation, makes it the active version in the catalog, and publishes
    /// it in place of the old one, in one step for readers.
    fn cut_over(
        &self,
        collection: &str,
        candidate: &ActiveEmbedder,
        index: Arc<VectorIndex>,
    ) -> Result<()> {
        let version = &candidate.version;
        let embedder = candidate.embedder.clone().map_err(Error::Embed)?;
        // Only chunks without a point in the index can lack a stored vector (a rollback's index
        // already holds everything that was written while it served).
        let without_point: Vec<ContentHash> = self
            .catalog()
            .all_chunk_hashes(collection)?
            .into_iter()
            .filter(|h| !index.contains(h))
            .collect();
        let have = self
            .catalog()
            .have_vectors(&version.fingerprint, &without_point)?;
        let late: Vec<ContentHash> = without_point
            .into_iter()
            .filter(|h| !have.contains(h))
            .collect();
        for batch in late.chunks(self.options.embed_batch.max(1)) {
            let texts = self.catalog().embed_texts(collection, batch)?;
            self.embed_texts_and_store(version, &embedder, &texts, None)?;
        }
        let old = self.recover(collection, self.open_indexes(collection)?, true)?;
        let generation = self.collection(collection)?.generation;
        self.sync_vectors(collection, &index, &version.fingerprint, generation)?;
        if index.needs_dump(0, true) {
            index.dump()?;
        }
        // The version served until now keeps an up-to-date dump, for an instant rollback.
        if let Some(v) = &old.vectors
            && v.needs_dump(0, true)
        {
            v.dump()?;
        }
        index.publish();
        let fresh = Arc::new(Indexes {
            bm25: old.bm25.clone(),
            vectors: Some(index),
            active: Some(candidate.clone()),
            publish: old.publish.clone(),
            incarnation: old.incarnation.clone(),
        });
        // Everything that can fail came before. The catalog switch and the readers' switch happen
        // under the map's lock, so a reader never pairs the new catalog with the old indexes.
        {
            let mut map = self.indexes.write().unwrap_or_else(|p| p.into_inner());
            self.catalog().activate_version(collection, &version.id)?;
            map.insert(collection.to_owned(), fresh);
        }
        let mut standby = self.standby.lock().unwrap_or_else(|p| p.into_inner());
        match (&old.active, &old.vectors) {
            (Some(a), Some(v)) if a.version.id != version.id => {
                standby.insert(collection.to_owned(), (a.version.id.clone(), v.clone()));
            }
            _ => {
                standby.remove(collection);
            }
        }
        drop(standby);
        tracing::info!(collection, version = %version.id, "embedding version activated");
        // Housekeeping after the switch: a failure is logged, the switch stands.
        let housekeeping = (|| -> Result<()> {
            if self.catalog().canaries(collection, &version.id)?.is_empty() {
                self.capture_canaries(collection, version)?;
            }
            self.apply_retention(collection)
        })();
        if let Err(e) = housekeeping {
            tracing::warn!(collection, version = %version.id, error = %e, "after the switch: canary capture or retention failed");
        }
        Ok(())
    }

    /// Version `id` of `collection`, or a not-found error.
    fn version_row(&self, collection: &str, id: &str) -> Result<VersionRow> {
        self.collection(collection)?;
        self.catalog()
            .version(collection, id)?
            .ok_or_else(|| Error::NotFound {
                what: "embedding version",
                id: id.to_owned(),
            })
    }

    /// Makes version `id` of `collection` the active one: a promotion of a `ready` version, or a
    /// rollback to an earlier one. Its vectors are stored, so nothing is embedded except chunks
    /// written since it last served. Its embedder must still be configured with its fingerprint.
    pub fn activate_version(&self, collection: &str, id: &str) -> Result<VersionInfo> {
        let version = self.version_row(collection, id)?;
        if matches!(version.state, VersionState::Building | VersionState::Failed) {
            return Err(Error::Input(format!(
                "version {id} is {}: only a ready, retired or active version can be activated",
                version.state
            )));
        }
        if let Some(j) = self
            .catalog()
            .jobs(Some(collection), &JobState::PENDING)?
            .into_iter()
            .find(|j| j.kind == JobKind::Rechunk)
        {
            return Err(Error::Busy(format!(
                "job {} is re-chunking collection `{collection}`; activate a version after it ends (or cancel it)",
                j.id
            )));
        }
        let embedder = match self.resolve(&version.embedder)? {
            Some(e) if e.fingerprint() == version.fingerprint => e,
            _ => {
                return Err(Error::Input(format!(
                    "version {id} was made by embedder `{}` with fingerprint {}, which is not configured \
                     any more; restore its [embedders.{}] settings to activate it",
                    version.embedder,
                    version.fingerprint.short(),
                    version.embedder
                )));
            }
        };
        if self.collection(collection)?.active_version.as_deref() != Some(id) {
            // The version that served before the last switch is still in memory: no reload.
            let standby = self
                .standby
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(collection)
                .filter(|(v, _)| *v == version.id)
                .map(|(_, ix)| ix.clone());
            let index = match standby {
                Some(ix) => ix,
                None => Arc::new(VectorIndex::open(
                    &self.version_dir(collection, &version.id),
                    version.spec.dimensions,
                    self.options.vector,
                )?),
            };
            let candidate = ActiveEmbedder {
                version: version.clone(),
                embedder: Ok(embedder),
            };
            self.with_write_lock(|| self.cut_over(collection, &candidate, index))?;
        }
        self.version_info(collection, id)
    }

    /// Retires a version that is not active: its vector index folder is deleted; its stored
    /// vectors stay in the embedding cache (so activating it again embeds nothing).
    pub fn retire_version(&self, collection: &str, id: &str) -> Result<()> {
        let version = self.version_row(collection, id)?;
        if version.state == VersionState::Building
            && self
                .catalog()
                .jobs(Some(collection), &JobState::PENDING)?
                .iter()
                .any(|j| j.kind == JobKind::Reindex)
        {
            return Err(Error::Busy(format!(
                "version {id} is being built; cancel its job first"
            )));
        }
        self.with_write_lock(|| self.retire_locked(collection, id))
    }

    /// Retires version `id` (not the active one); the caller holds the writer lock.
    fn retire_locked(&self, collection: &str, id: &str) -> Result<()> {
        {
            let mut standby = self.standby.lock().unwrap_or_else(|p| p.into_inner());
            if standby.get(collection).is_some_and(|(v, _)| v == id) {
                standby.remove(collection);
            }
        }
        if self.collection(collection)?.active_version.as_deref() == Some(id) {
            return Err(Error::Input(format!(
                "version {id} is active; activate another version first"
            )));
        }
        let dir = self.version_dir(collection, id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        self.catalog()
            .set_version_state(collection, id, VersionState::Retired)
    }

    /// Retires the versions that served before, beyond the `keep_versions - 1` most recently
    /// active ones (`reindex.keep_versions`; 0 keeps all). A version the eval gate held back
    /// never served, and is kept for a person to decide. The caller holds the writer lock.
    fn apply_retention(&self, collection: &str) -> Result<()> {
        let keep = self.options.keep_versions;
        if keep == 0 {
            return Ok(());
        }
        let mut served: Vec<VersionRow> = self
            .catalog()
            .versions(collection)?
            .into_iter()
            .filter(|v| v.state == VersionState::Ready && v.activated_at.is_some())
            .collect();
        served.sort_by_key(|v| std::cmp::Reverse(v.activation_seq));
        for v in served.iter().skip(keep.saturating_sub(1)) {
            tracing::info!(collection, version = %v.id, keep, "retiring an old embedding version (reindex.keep_versions)");
            self.retire_locked(collection, &v.id)?;
        }
        Ok(())
    }

    /// Stores the canary set of `version`: the [`CANARY_SIZE`] chunks of the collection with the
    /// smallest hashes (a fixed, content-spread sample) and their stored vectors of the version.
    fn capture_canaries(&self, collection: &str, version: &VersionRow) -> Result<usize> {
        let mut hashes = self.catalog().all_chunk_hashes(collection)?;
        hashes.sort();
        let stored = self.catalog().vectors(
            &version.fingerprint,
            &hashes[..hashes.len().min(4 * CANARY_SIZE)],
        )?;
        let picked: Vec<ContentHash> = hashes
            .iter()
            .filter(|h| stored.contains_key(h))
            .take(CANARY_SIZE)
            .copied()
            .collect();
        let texts = self.catalog().embed_texts(collection, &picked)?;
        let rows: Vec<(ContentHash, String, Vec<f32>)> = texts
            .into_iter()
            .filter_map(|(h, t)| Some((h, t, stored.get(&h)?.clone())))
            .collect();
        self.catalog()
            .put_canaries(collection, &version.id, &rows)?;
        Ok(rows.len())
    }

    /// Re-embeds the canary set of the collection's active version (capturing one first if the
    /// version has none) and compares with the stored vectors. Sets the
    /// `quarry_embedding_canary_min_cosine` and `quarry_embedding_drift` gauges; a drift is also
    /// logged as a warning. `None` for a collection without vectors.
    pub fn check_canary(&self, collection: &str) -> Result<Option<CanaryReport>> {
        let Some(version) = self.catalog().active_version(collection)? else {
            return Ok(None);
        };
        let embedder = match self.resolve(&version.embedder)? {
            Some(e) if e.fingerprint() == version.fingerprint => e,
            _ => {
                return Err(Error::Input(format!(
                    "embedder `{}` is configured differently from version {}; a re-index to the new settings is due, not a canary check",
                    version.embedder, version.id
                )));
            }
        };
        let mut canaries = self.catalog().canaries(collection, &version.id)?;
        if canaries.is_empty() {
            self.capture_canaries(collection, &version)?;
            canaries = self.catalog().canaries(collection, &version.id)?;
        }
        let mut min_cosine = 1.0f64;
        for batch in canaries.chunks(self.options.embed_batch.max(1)) {
            let inputs: Vec<&str> = batch.iter().map(|(t, _)| t.as_str()).collect();
            let now = embedder
                .embed(&inputs, InputKind::Document)
                .map_err(|e| Error::Embed(e.to_string()))?;
            if now.len() != batch.len() {
                return Err(Error::Embed(format!(
                    "embedder `{}` returned {} vectors for {} canary texts",
                    version.embedder,
                    now.len(),
                    batch.len()
                )));
            }
            for ((_, stored), mut v) in batch.iter().zip(now) {
                quarry_core::embed::normalize(&mut v);
                let c = if v.len() == stored.len() {
                    f64::from(quarry_core::embed::cosine(stored, &v))
                } else {
                    0.0
                };
                min_cosine = min_cosine.min(c);
            }
        }
        if canaries.is_empty() {
            return Ok(None);
        }
        let drifted = min_cosine < self.options.canary_min_cosine;
        self.telemetry()
            .observe_canary(collection, &version.id, min_cosine, drifted);
        if drifted {
            tracing::warn!(
                collection, version = %version.id, min_cosine,
                "embedding drift: embedder `{}` now embeds the canary chunks of version {} differently \
                 (lowest cosine {min_cosine:.4} < {}): the provider changed its model behind the same name. \
                 Vectors of the two no longer compare; re-index to a new embedder name, or pin the provider's model version",
                version.embedder, version.id, self.options.canary_min_cosine
            );
        }
        Ok(Some(CanaryReport {
            collection: collection.to_owned(),
            version: version.id,
            embedder: version.embedder,
            checked: canaries.len(),
            min_cosine,
            drifted,
        }))
    }

    /// [`Engine::check_canary`] of every collection; a collection that cannot be checked is
    /// reported as an error string.
    pub fn check_canaries(&self) -> Result<Vec<(String, CanaryOutcome)>> {
        let collections = self.catalog().collections()?;
        let out: Vec<(String, CanaryOutcome)> = collections
            .into_iter()
            .map(|c| {
                let r = self.check_canary(&c.name).map_err(|e| e.to_string());
                (c.name, r)
            })
            .collect();
        // Only the versions that serve keep canary series.
        let serving: std::collections::BTreeSet<(String, String)> = out
            .iter()
            .filter_map(|(c, r)| Some((c.clone(), r.as_ref().ok()?.as_ref()?.version.clone())))
            .collect();
        self.telemetry().retain_canary(&serving);
        Ok(out)
    }

    /// Collections whose active version's embedder is now configured with another fingerprint
    /// (a different model, weights file, pooling or prefixes under the same name). Their vector
    /// queries answer from BM25 until a re-index to the new settings is promoted.
    pub fn model_changes(&self) -> Result<Vec<ModelChange>> {
        let mut out = Vec::new();
        // One catalog lock at a time: the list is read before the loop locks again.
        let collections = self.catalog().collections()?;
        for row in collections {
            let Some(active) = self.catalog().active_version(&row.name)? else {
                continue;
            };
            let Ok(Some(e)) = self.resolve(&active.embedder) else {
                continue;
            };
            if e.fingerprint() != active.fingerprint {
                out.push(ModelChange {
                    collection: row.name,
                    embedder: active.embedder.clone(),
                    active_version: active.id.clone(),
                    active_fingerprint: active.fingerprint.to_hex(),
                    configured_fingerprint: e.fingerprint().to_hex(),
                });
            }
        }
        Ok(out)
    }
}

fn ndcg_of(run: &crate::catalog::EvalRunSummary, mode: &str) -> Option<f64> {
    run.metrics[mode]["ndcg@10"].as_f64()
}

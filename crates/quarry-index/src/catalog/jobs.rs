//! Background jobs (`jobs`). A job row is the durable record of a re-index or a re-chunk: its parameters, progress counters (written after every batch, so a restarted
//! job reports what was done before it), a cancellation request, and its result.

use super::job_data::{JobParams, JobResult};
use super::schema::{Catalog, now};
use super::states::{JobKind, JobState};
use crate::error::{Error, Result};
use rusqlite::{OptionalExtension, params};

/// A job as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub collection: String,
    pub state: JobState,
    pub params: JobParams,
    /// Chunks done and to do.
    pub processed: u64,
    pub total: u64,
    /// Chunks sent to the embedder, and chunks whose vector was already stored.
    pub embedded: u64,
    pub cache_hits: u64,
    /// Tokens of the chunks embedded, for an embedder that counts them (0 for the others).
    #[serde(default)]
    pub tokens: u64,
    pub error: Option<String>,
    /// What the job ended with (the version, whether it was promoted, the eval gate).
    pub result: Option<JobResult>,
    pub cancel_requested: bool,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub updated_at: i64,
}

impl Job {
    /// Chunks embedded per second since the job started (`None` before any were).
    pub fn rate_per_s(&self) -> Option<f64> {
        let secs = (self.updated_at - self.started_at?).max(0) as f64;
        (secs > 0.0 && self.embedded > 0).then(|| self.embedded as f64 / secs)
    }

    /// Tokens embedded per second since the job started (`None` before any were counted).
    pub fn tokens_per_s(&self) -> Option<f64> {
        let secs = (self.updated_at - self.started_at?).max(0) as f64;
        (secs > 0.0 && self.tokens > 0).then(|| self.tokens as f64 / secs)
    }

    /// Seconds left at that rate, while the job runs.
    pub fn eta_s(&self) -> Option<f64> {
        let rate = self.rate_per_s()?;
        (self.state == JobState::Running)
            .then(|| self.total.saturating_sub(self.processed) as f64 / rate)
    }
}

const COLUMNS: &str = "id, kind, collection, state, params, processed, total, embedded, cache_hits, \
                       error, result, cancel_requested, created_at, started_at, updated_at, tokens";

/// A job row as read: the job, with its kind, state, params and result as stored (parsed by
/// [`finish`], outside SQLite's row callback, so a bad value is a clear [`Error`]).
struct Stored {
    id: String,
    kind: String,
    collection: String,
    state: String,
    params: String,
    processed: u64,
    total: u64,
    embedded: u64,
    cache_hits: u64,
    tokens: u64,
    error: Option<String>,
    result: Option<String>,
    cancel_requested: bool,
    created_at: i64,
    started_at: Option<i64>,
    updated_at: i64,
}

fn job(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        id: r.get(0)?,
        kind: r.get(1)?,
        collection: r.get(2)?,
        state: r.get(3)?,
        params: r.get(4)?,
        processed: r.get::<_, i64>(5)? as u64,
        total: r.get::<_, i64>(6)? as u64,
        embedded: r.get::<_, i64>(7)? as u64,
        cache_hits: r.get::<_, i64>(8)? as u64,
        error: r.get(9)?,
        result: r.get(10)?,
        cancel_requested: r.get::<_, i64>(11)? != 0,
        created_at: r.get(12)?,
        started_at: r.get(13)?,
        updated_at: r.get(14)?,
        tokens: r.get::<_, i64>(15)? as u64,
    })
}

fn finish(s: Stored) -> Result<Job> {
    let id = &s.id;
    let corrupt =
        |what: &str, e: serde_json::Error| Error::Corrupt(format!("job {id} {what}: {e}"));
    let params = serde_json::from_str(&s.params).map_err(|e| corrupt("params", e))?;
    let result = s
        .result
        .as_deref()
        .map(|r| serde_json::from_str(r).map_err(|e| corrupt("result", e)))
        .transpose()?;
    Ok(Job {
        kind: s.kind.parse()?,
        state: s.state.parse()?,
        params,
        result,
        id: s.id,
        collection: s.collection,
        processed: s.processed,
        total: s.total,
        embedded: s.embedded,
        tokens: s.tokens,
        cache_hits: s.cache_hits,
        error: s.error,
        cancel_requested: s.cancel_requested,
        created_at: s.created_at,
        started_at: s.started_at,
        updated_at: s.updated_at,
    })
}

/// A struct as the catalog stores it: through a `serde_json::Value`, so its keys are sorted as
/// in the blobs written before the structs existed.
fn to_stored_json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_value(v)
        .map(|v| v.to_string())
        .map_err(|e| Error::Corrupt(e.to_string()))
}

impl Catalog {
    /// Queues a job and returns it (`j<N>`, N one more than the highest so far), unless a job of
    /// one of the kinds `exclusive` is queued or running for the collection: then that job, in
    /// `Err`. The check and the insert are one transaction, so two processes cannot both pass.
    pub(crate) fn insert_job(
        &mut self,
        kind: JobKind,
        collection: &str,
        params: &JobParams,
        exclusive: &[JobKind],
    ) -> Result<std::result::Result<Job, Job>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let blocking: Option<String> = tx
            .query_row(
                "SELECT id FROM jobs WHERE collection = ?1 AND state IN ('queued', 'running')
                 AND kind IN (SELECT value FROM json_each(?2)) ORDER BY created_at LIMIT 1",
                params![
                    collection,
                    serde_json::to_string(exclusive).map_err(|e| Error::Corrupt(e.to_string()))?
                ],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = blocking {
            drop(tx);
            let j = self
                .job(&id)?
                .ok_or_else(|| Error::Corrupt(format!("job {id} vanished")))?;
            return Ok(Err(j));
        }
        let next: i64 = tx.query_row(
            "SELECT COALESCE(MAX(CAST(substr(id, 2) AS INTEGER)), 0) + 1 FROM jobs WHERE id GLOB 'j[0-9]*'",
            [],
            |r| r.get(0),
        )?;
        let id = format!("j{next}");
        let t = now();
        tx.execute(
            "INSERT INTO jobs (id, kind, collection, state, params, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?5)",
            params![id, kind, collection, to_stored_json(params)?, t],
        )?;
        tx.commit()?;
        Ok(Ok(self.job(&id)?.ok_or_else(|| {
            Error::Corrupt(format!("job {id} vanished"))
        })?))
    }

    pub(crate) fn job(&self, id: &str) -> Result<Option<Job>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"))?;
        stmt.query_row([id], job)
            .optional()?
            .map(finish)
            .transpose()
    }

    /// Jobs, oldest first; of one collection, or in some states, when given.
    pub(crate) fn jobs(&self, collection: Option<&str>, states: &[JobState]) -> Result<Vec<Job>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE ?1 IS NULL OR collection = ?1
             ORDER BY created_at, CAST(substr(id, 2) AS INTEGER)"
        ))?;
        let rows = stmt.query_map([collection], job)?;
        let mut out = Vec::new();
        for r in rows {
            let j = finish(r?)?;
            if states.is_empty() || states.contains(&j.state) {
                out.push(j);
            }
        }
        Ok(out)
    }

    /// Marks a job running (keeping its counters when it resumes).
    pub(crate) fn start_job(&self, id: &str) -> Result<()> {
        let t = now();
        self.conn.execute(
            "UPDATE jobs SET state = 'running', started_at = COALESCE(started_at, ?2), updated_at = ?2 WHERE id = ?1",
            params![id, t],
        )?;
        Ok(())
    }

    /// Progress after a batch: `processed` of `total`, plus `embedded` and `cache_hits` more.
    pub(crate) fn job_progress(
        &self,
        id: &str,
        processed: u64,
        total: u64,
        embedded: u64,
        cache_hits: u64,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE jobs SET processed = ?2, total = ?3, embedded = embedded + ?4,
             cache_hits = cache_hits + ?5, updated_at = ?6 WHERE id = ?1",
            params![
                id,
                processed as i64,
                total as i64,
                embedded as i64,
                cache_hits as i64,
                now()
            ],
        )?;
        Ok(())
    }

    /// Stores a batch of a job's vectors and its progress in one transaction, so the job's
    /// `embedded` counts exactly the vectors it stored, whenever the process dies. `job`: its id,
    /// and `processed` of `total` after the batch; `tokens`: the batch's, as the model counted.
    pub(crate) fn put_job_vectors(
        &mut self,
        fingerprint: &quarry_core::Fingerprint,
        vectors: &[(quarry_core::ContentHash, Vec<f32>)],
        (job, processed, total): (&str, u64, u64),
        tokens: u64,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        super::vectors::insert_vectors(&tx, fingerprint, vectors)?;
        tx.execute(
            "UPDATE jobs SET processed = ?2, total = ?3, embedded = embedded + ?4,
             tokens = tokens + ?5, updated_at = ?6 WHERE id = ?1",
            params![
                job,
                processed as i64,
                total as i64,
                vectors.len() as i64,
                tokens as i64,
                now()
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Ends a job: `succeeded`, `failed` or `cancelled`, with an error or a result.
    pub(crate) fn end_job(
        &self,
        id: &str,
        state: JobState,
        error: Option<&str>,
        result: Option<&JobResult>,
    ) -> Result<()> {
        let result = result.map(to_stored_json).transpose()?;
        self.conn.execute(
            "UPDATE jobs SET state = ?2, error = ?3, result = ?4, updated_at = ?5 WHERE id = ?1",
            params![id, state, error, result, now()],
        )?;
        Ok(())
    }

    /// Asks a job to stop: a queued job is cancelled at once, a running one at its next batch.
    /// Returns the job as it is now; `None` when there is no such job.
    pub(crate) fn cancel_job(&self, id: &str) -> Result<Option<Job>> {
        self.conn.execute(
            "UPDATE jobs SET state = CASE state WHEN 'queued' THEN 'cancelled' ELSE state END,
             cancel_requested = CASE WHEN state IN ('queued', 'running') THEN 1 ELSE cancel_requested END,
             updated_at = ?2 WHERE id = ?1",
            params![id, now()],
        )?;
        self.job(id)
    }
}

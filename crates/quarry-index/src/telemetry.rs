//! Telemetry: what `GET /metrics` shows, in the OpenMetrics text format Prometheus scrapes
//! (prometheus-client). One [`Telemetry`] per [`Engine`](crate::Engine); everything that
//! queries, ingests, embeds or evaluates through the engine records into it.
//!
//! | family | labels | what |
//! |---|---|---|
//! | `quarry_query_duration_seconds` (histogram) | collection, mode | served queries, by the mode asked for |
//! | `quarry_queries_total` | collection, mode, outcome | `ok`, `degraded` (BM25 alone: the vector side failed), `invalid` (the caller's mistake), `error` |
//! | `quarry_ingest_documents_total` | collection, outcome | `added`, `updated`, `acl_updated`, `unchanged`, `deleted` |
//! | `quarry_ingest_chunks_total` | collection | chunks written to or removed from the indexes |
//! | `quarry_embedding_calls_total`, `quarry_embedding_failures_total` | embedder, kind | calls to the model or provider (`kind`: document, query) |
//! | `quarry_embedding_texts_total`, `quarry_embedding_tokens_total` | embedder, kind | texts embedded, and their tokens when the embedder counts them (local models) |
//! | `quarry_embedding_seconds_total` | embedder, kind | time spent in embedding calls |
//! | `quarry_embedding_cache_hits_total` | embedder | chunks of changed documents whose vector was already stored |
//! | `quarry_embedding_queued_total` | embedder | chunks of changed documents with no stored vector, handed to the embedder (an ingest's "of the total to embed") |
//! | `quarry_query_embed_cache_total` | result | query texts looked up in the query-embedding cache: `hit` (not embedded again) or `miss` |
//! | `quarry_eval_ndcg_at_10`, `quarry_eval_recall_at_100` (gauges) | collection, golden, mode | the latest scheduled run of each golden set |
//! | `quarry_eval_last_run_timestamp_seconds` (gauge) | collection, golden | when that run was recorded (Unix time) |
//! | `quarry_eval_failures_total` | collection, golden | scheduled runs that could not run |
//! | `quarry_eval_drift_alert` (gauge) | collection | 1 while the latest scheduled run of a golden set is more than `eval.alert_drop` below the best of the runs before it |
//! | `quarry_embedding_canary_min_cosine`, `quarry_embedding_drift` (gauges) | collection, version | the latest canary check: lowest cosine, and 1 when it is below `reindex.canary_min_cosine` |
//! | `quarry_searches_running`, `quarry_searches_waiting` (gauges) | | searches holding one of the server's `server.max_concurrent_queries` slots, and requests waiting for one |
//!
//! The series of a golden set (and the alert of a collection) that no longer exists are removed at
//! the next scheduled pass.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use quarry_core::{EmbedError, Embedder, EmbedderSpec, Fingerprint, InputKind};
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

mod labels;
use labels::{
    CollectionLabels, EmbedCallLabels, EmbedderLabels, EvalLabels, GoldenLabels, IngestLabels,
    ModeLabels, OutcomeLabels, ResultLabels, VersionLabels,
};

/// Query latency buckets, in seconds: 0.5 ms to 10 s.
const QUERY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

/// How a served query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOutcome {
    Ok,
    /// Answered from BM25 alone because the vector side failed.
    Degraded,
    /// The caller's mistake (a bad parameter, a mode the collection cannot answer in).
    Invalid,
    Error,
}

impl QueryOutcome {
    fn as_str(self) -> &'static str {
        match self {
            QueryOutcome::Ok => "ok",
            QueryOutcome::Degraded => "degraded",
            QueryOutcome::Invalid => "invalid",
            QueryOutcome::Error => "error",
        }
    }
}

/// Texts and tokens of document embedding calls that succeeded, nanoseconds of all of them, and
/// the chunks queued for them.
#[derive(Default)]
struct DocumentTotals {
    queued: std::sync::atomic::AtomicU64,
    texts: std::sync::atomic::AtomicU64,
    tokens: std::sync::atomic::AtomicU64,
    nanos: std::sync::atomic::AtomicU64,
}

/// What this process embedded as documents so far, over every embedder: the sums of
/// `quarry_embedding_texts_total`, `quarry_embedding_tokens_total` and
/// `quarry_embedding_seconds_total` with `kind="document"` (texts and tokens of the calls that
/// succeeded, the time of every call, as those series count them), and the chunks queued to be
/// embedded (`quarry_embedding_queued_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EmbedTotals {
    /// Chunks found without a stored vector and handed to an embedder: what `texts` reaches when
    /// every queued batch is done (unless a call fails).
    pub queued: u64,
    pub texts: u64,
    /// Tokens, for embedders that count them (0 for the others).
    pub tokens: u64,
    pub seconds: f64,
}

/// The metric families of one engine, registered once.
pub struct Telemetry {
    registry: Registry,
    query_seconds: Family<ModeLabels, Histogram>,
    queries: Family<OutcomeLabels, Counter>,
    ingest_documents: Family<IngestLabels, Counter>,
    ingest_chunks: Family<CollectionLabels, Counter>,
    embed_calls: Family<EmbedCallLabels, Counter>,
    embed_failures: Family<EmbedCallLabels, Counter>,
    embed_texts: Family<EmbedCallLabels, Counter>,
    embed_tokens: Family<EmbedCallLabels, Counter>,
    embed_seconds: Family<EmbedCallLabels, FloatCounter>,
    embed_cache_hits: Family<EmbedderLabels, Counter>,
    embed_queued: Family<EmbedderLabels, Counter>,
    query_embed_cache: Family<ResultLabels, Counter>,
    eval_ndcg10: Family<EvalLabels, FloatGauge>,
    eval_recall100: Family<EvalLabels, FloatGauge>,
    eval_last_run: Family<GoldenLabels, Gauge>,
    eval_failures: Family<GoldenLabels, Counter>,
    drift_alert: Family<CollectionLabels, Gauge>,
    canary_min_cosine: Family<VersionLabels, FloatGauge>,
    embedding_drift: Family<VersionLabels, Gauge>,
    /// Searches holding a slot, and waiting for one ([`Telemetry::search_running`]).
    searches_running: Gauge,
    searches_waiting: Gauge,
    /// Sums of the `kind="document"` embedding series over every embedder, read back by an
    /// ingest's progress and summary ([`Telemetry::document_embedding`]).
    documents_embedded: DocumentTotals,
    /// The golden sets with eval series, so the series of a removed set can be removed.
    eval_series: Mutex<BTreeSet<(String, String)>>,
    /// The versions with canary series.
    canary_series: Mutex<BTreeSet<(String, String)>>,
}

/// One in a gauge while it lives, however its holder ends (a dropped future, a finished task).
pub struct Counted(Gauge);

impl Counted {
    fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Counted(gauge.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let mut t = Telemetry {
            registry: Registry::default(),
            query_seconds: Family::new_with_constructor(|| {
                Histogram::new(QUERY_BUCKETS.iter().copied())
            }),
            queries: Family::default(),
            ingest_documents: Family::default(),
            ingest_chunks: Family::default(),
            embed_calls: Family::default(),
            embed_failures: Family::default(),
            embed_texts: Family::default(),
            embed_tokens: Family::default(),
            embed_seconds: Family::default(),
            embed_cache_hits: Family::default(),
            embed_queued: Family::default(),
            documents_embedded: DocumentTotals::default(),
            query_embed_cache: Family::default(),
            eval_ndcg10: Family::default(),
            eval_recall100: Family::default(),
            eval_last_run: Family::default(),
            eval_failures: Family::default(),
            drift_alert: Family::default(),
            canary_min_cosine: Family::default(),
            embedding_drift: Family::default(),
            searches_running: Gauge::default(),
            searches_waiting: Gauge::default(),
            eval_series: Mutex::new(BTreeSet::new()),
            canary_series: Mutex::new(BTreeSet::new()),
        };
        t.registry.register(
            "quarry_query_duration_seconds",
            "Latency of served queries, by the mode asked for",
            t.query_seconds.clone(),
        );
        t.registry.register(
            "quarry_queries",
            "Served queries by outcome: ok, degraded (BM25 alone), error",
            t.queries.clone(),
        );
        t.registry.register(
            "quarry_ingest_documents",
            "Documents written, by outcome: added, updated, acl_updated, unchanged, deleted",
            t.ingest_documents.clone(),
        );
        t.registry.register(
            "quarry_ingest_chunks",
            "Chunks written to or removed from the indexes",
            t.ingest_chunks.clone(),
        );
        t.registry.register(
            "quarry_embedding_calls",
            "Calls to an embedding model or provider",
            t.embed_calls.clone(),
        );
        t.registry.register(
            "quarry_embedding_failures",
            "Embedding calls that failed (after the provider's retries)",
            t.embed_failures.clone(),
        );
        t.registry.register(
            "quarry_embedding_texts",
            "Texts sent to an embedder",
            t.embed_texts.clone(),
        );
        t.registry.register(
            "quarry_embedding_tokens",
            "Tokens of the texts sent to an embedder that counts tokens (local models), truncation applied",
            t.embed_tokens.clone(),
        );
        t.registry.register(
            "quarry_embedding_seconds",
            "Time spent in embedding calls",
            t.embed_seconds.clone(),
        );
        t.registry.register(
            "quarry_embedding_cache_hits",
            "Chunks of changed documents whose vector was already stored, so not embedded again",
            t.embed_cache_hits.clone(),
        );
        t.registry.register(
            "quarry_embedding_queued",
            "Chunks of changed documents with no stored vector, handed to the embedder",
            t.embed_queued.clone(),
        );
        t.registry.register(
            "quarry_query_embed_cache",
            "Query texts looked up in the query-embedding cache, by result: hit (not embedded again) or miss",
            t.query_embed_cache.clone(),
        );
        t.registry.register(
            "quarry_eval_ndcg_at_10",
            "nDCG@10 of the latest scheduled run of a golden set",
            t.eval_ndcg10.clone(),
        );
        t.registry.register(
            "quarry_eval_recall_at_100",
            "Recall@100 of the latest scheduled run of a golden set",
            t.eval_recall100.clone(),
        );
        t.registry.register(
            "quarry_eval_last_run_timestamp_seconds",
            "When the latest scheduled run of a golden set was recorded (Unix time)",
            t.eval_last_run.clone(),
        );
        t.registry.register(
            "quarry_eval_failures",
            "Scheduled runs of a golden set that could not run",
            t.eval_failures.clone(),
        );
        t.registry.register(
            "quarry_eval_drift_alert",
            "1 while the latest scheduled run of a golden set of the collection is more than eval.alert_drop below the best of the runs before it",
            t.drift_alert.clone(),
        );
        t.registry.register(
            "quarry_embedding_canary_min_cosine",
            "Lowest cosine between a canary chunk's stored vector and its vector at the latest check",
            t.canary_min_cosine.clone(),
        );
        t.registry.register(
            "quarry_embedding_drift",
            "1 when the latest canary check found the embedder's model changed (lowest cosine below reindex.canary_min_cosine)",
            t.embedding_drift.clone(),
        );
        t.registry.register(
            "quarry_searches_running",
            "Searches holding one of the server.max_concurrent_queries slots",
            t.searches_running.clone(),
        );
        t.registry.register(
            "quarry_searches_waiting",
            "Searches waiting for a free server.max_concurrent_queries slot",
            t.searches_waiting.clone(),
        );
        t
    }

    /// The latest canary check of version `version` of `collection`.
    pub fn observe_canary(&self, collection: &str, version: &str, min_cosine: f64, drifted: bool) {
        self.canary_series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((collection.to_owned(), version.to_owned()));
        let labels = VersionLabels {
            collection: collection.to_owned(),
            version: version.to_owned(),
        };
        self.canary_min_cosine
            .get_or_create(&labels)
            .set(min_cosine);
        self.embedding_drift
            .get_or_create(&labels)
            .set(i64::from(drifted));
    }

    /// Removes the canary series of every version not in `serving` (`(collection, version)`).
    pub fn retain_canary(&self, serving: &BTreeSet<(String, String)>) {
        let mut seen = self.canary_series.lock().unwrap_or_else(|p| p.into_inner());
        for (collection, version) in seen.difference(serving).cloned().collect::<Vec<_>>() {
            let labels = VersionLabels {
                collection: collection.clone(),
                version: version.clone(),
            };
            self.canary_min_cosine.remove(&labels);
            self.embedding_drift.remove(&labels);
            seen.remove(&(collection, version));
        }
    }

    /// One search waiting for a slot (`quarry_searches_waiting`) while the guard lives.
    pub fn search_waiting(&self) -> Counted {
        Counted::new(&self.searches_waiting)
    }

    /// One search holding a slot (`quarry_searches_running`) while the guard lives.
    pub fn search_running(&self) -> Counted {
        Counted::new(&self.searches_running)
    }

    /// Everything, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// One served query: its latency and how it ended.
    pub fn observe_query(&self, collection: &str, mode: &str, outcome: QueryOutcome, secs: f64) {
        self.query_seconds
            .get_or_create(&ModeLabels {
                collection: collection.to_owned(),
                mode: mode.to_owned(),
            })
            .observe(secs);
        self.queries
            .get_or_create(&OutcomeLabels {
                collection: collection.to_owned(),
                mode: mode.to_owned(),
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
    }

    /// What one committed write did to `collection`.
    pub fn observe_apply(&self, collection: &str, stats: &crate::ApplyStats) {
        for (outcome, n) in [
            ("added", stats.added),
            ("updated", stats.updated),
            ("acl_updated", stats.acl_updated),
            ("unchanged", stats.unchanged),
            ("deleted", stats.deleted),
        ] {
            if n > 0 {
                self.ingest_documents
                    .get_or_create(&IngestLabels {
                        collection: collection.to_owned(),
                        outcome: outcome.to_owned(),
                    })
                    .inc_by(n);
            }
        }
        if stats.chunks_touched > 0 {
            self.ingest_chunks
                .get_or_create(&CollectionLabels {
                    collection: collection.to_owned(),
                })
                .inc_by(stats.chunks_touched);
        }
    }

    /// Chunks of `embedder` found in the embedding cache.
    pub fn observe_cache_hits(&self, embedder: &str, hits: u64) {
        if hits > 0 {
            self.embed_cache_hits
                .get_or_create(&EmbedderLabels {
                    embedder: embedder.to_owned(),
                })
                .inc_by(hits);
        }
    }

    /// `chunks` of changed documents with no vector of `embedder` stored, about to be embedded.
    pub fn observe_queued(&self, embedder: &str, chunks: u64) {
        if chunks > 0 {
            self.embed_queued
                .get_or_create(&EmbedderLabels {
                    embedder: embedder.to_owned(),
                })
                .inc_by(chunks);
            self.documents_embedded
                .queued
                .fetch_add(chunks, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// One lookup in the query-embedding cache: a hit, or a miss (the text goes to the model).
    pub fn observe_query_embed_cache(&self, hit: bool) {
        self.query_embed_cache
            .get_or_create(&ResultLabels {
                result: if hit { "hit" } else { "miss" }.to_owned(),
            })
            .inc();
    }

    /// The latest scheduled run of golden set `golden`: nDCG@10 and Recall@100 per mode,
    /// recorded at `at`.
    pub fn observe_eval(
        &self,
        collection: &str,
        golden: &str,
        at: i64,
        modes: &[(&str, f64, f64)],
    ) {
        self.eval_series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((collection.to_owned(), golden.to_owned()));
        for (mode, ndcg10, recall100) in modes {
            let labels = EvalLabels {
                collection: collection.to_owned(),
                golden: golden.to_owned(),
                mode: (*mode).to_owned(),
            };
            self.eval_ndcg10.get_or_create(&labels).set(*ndcg10);
            self.eval_recall100.get_or_create(&labels).set(*recall100);
        }
        self.eval_last_run
            .get_or_create(&GoldenLabels {
                collection: collection.to_owned(),
                golden: golden.to_owned(),
            })
            .set(at);
    }

    /// A scheduled run of golden set `golden` that could not run.
    pub fn observe_eval_failure(&self, collection: &str, golden: &str) {
        self.eval_failures
            .get_or_create(&GoldenLabels {
                collection: collection.to_owned(),
                golden: golden.to_owned(),
            })
            .inc();
    }

    /// Removes the eval series of every golden set not in `present` (it was deleted), and the
    /// drift alert of every collection without one.
    pub fn retain_eval(&self, present: &BTreeSet<(String, String)>) {
        let mut seen = self.eval_series.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<(String, String)> = seen.difference(present).cloned().collect();
        for (collection, golden) in gone {
            for mode in ["bm25", "vector", "hybrid"] {
                let labels = EvalLabels {
                    collection: collection.clone(),
                    golden: golden.clone(),
                    mode: mode.to_owned(),
                };
                self.eval_ndcg10.remove(&labels);
                self.eval_recall100.remove(&labels);
            }
            let labels = GoldenLabels {
                collection: collection.clone(),
                golden: golden.clone(),
            };
            self.eval_last_run.remove(&labels);
            self.eval_failures.remove(&labels);
            seen.remove(&(collection.clone(), golden));
            if !present.iter().any(|(c, _)| *c == collection) {
                self.drift_alert.remove(&CollectionLabels { collection });
            }
        }
    }

    /// Raises (`true`) or clears the drift alert of `collection`.
    pub fn set_drift_alert(&self, collection: &str, on: bool) {
        self.drift_alert
            .get_or_create(&CollectionLabels {
                collection: collection.to_owned(),
            })
            .set(i64::from(on));
    }

    /// What this process embedded as documents so far ([`EmbedTotals`]).
    pub fn document_embedding(&self) -> EmbedTotals {
        use std::sync::atomic::Ordering::Relaxed;
        let d = &self.documents_embedded;
        EmbedTotals {
            queued: d.queued.load(Relaxed),
            texts: d.texts.load(Relaxed),
            tokens: d.tokens.load(Relaxed),
            seconds: d.nanos.load(Relaxed) as f64 / 1e9,
        }
    }

    /// `embedder` (named `name` in the configuration), with every call it makes recorded here.
    pub fn meter(self: &Arc<Self>, name: &str, embedder: Arc<dyn Embedder>) -> Arc<dyn Embedder> {
        Arc::new(Metered {
            inner: embedder,
            name: name.to_owned(),
            telemetry: self.clone(),
        })
    }
}

/// An embedder that records its calls, texts, tokens and time.
struct Metered {
    inner: Arc<dyn Embedder>,
    name: String,
    telemetry: Arc<Telemetry>,
}

impl Embedder for Metered {
    fn spec(&self) -> &EmbedderSpec {
        self.inner.spec()
    }

    fn fingerprint(&self) -> Fingerprint {
        self.inner.fingerprint()
    }

    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(self.embed_counted(texts, kind)?.0)
    }

    fn embed_counted(
        &self,
        texts: &[&str],
        kind: InputKind,
    ) -> Result<(Vec<Vec<f32>>, Option<usize>), EmbedError> {
        let started = Instant::now();
        let out = self.inner.embed_counted(texts, kind);
        let t = &self.telemetry;
        let labels = EmbedCallLabels {
            embedder: self.name.clone(),
            kind: match kind {
                InputKind::Document => "document",
                InputKind::Query => "query",
            }
            .to_owned(),
        };
        t.embed_calls.get_or_create(&labels).inc();
        let elapsed = started.elapsed();
        t.embed_seconds
            .get_or_create(&labels)
            .inc_by(elapsed.as_secs_f64());
        let documents = (kind == InputKind::Document).then_some(&t.documents_embedded);
        if let Some(d) = documents {
            let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
            d.nanos
                .fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
        }
        if out.is_err() {
            t.embed_failures.get_or_create(&labels).inc();
            return out;
        }
        t.embed_texts
            .get_or_create(&labels)
            .inc_by(texts.len() as u64);
        let tokens = out.as_ref().map_or(None, |(_, n)| *n);
        if let Some(n) = tokens {
            t.embed_tokens.get_or_create(&labels).inc_by(n as u64);
        }
        if let Some(d) = documents {
            use std::sync::atomic::Ordering::Relaxed;
            d.texts.fetch_add(texts.len() as u64, Relaxed);
            d.tokens.fetch_add(tokens.unwrap_or(0) as u64, Relaxed);
        }
        out
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.inner.count_tokens(text)
    }
}
#[cfg(test)]
#[path = "telemetry_tests.rs"]
mod tests;

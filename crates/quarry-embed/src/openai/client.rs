//! The embedder itself: batching, bounded concurrency, attempts, retries with backoff and jitter,
//! and the probe of the dimension.

use super::options::{MAX_DIMENSIONS, OpenAiOptions};
use super::wire::{EmbeddingRequest, chain, parse_response, provider_message, retry_after};
use quarry_core::{EmbedError, Embedder, EmbedderSpec, Fingerprint, InputKind};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Retries granted to unusable 2xx answers (within `max_retries`).
const MAX_INVALID_RETRIES: u32 = 1;
/// Largest response body read; a larger one is an unusable answer.
const MAX_BODY_BYTES: u64 = 256 << 20;
/// Most of an error body read.
const MAX_ERROR_BODY_BYTES: u64 = 64 << 10;
/// The text sent to learn the dimension when none is configured.
const PROBE_TEXT: &str = "dimension probe";

/// The OpenAI-compatible HTTP embedder. Cheap to share across threads.
pub struct OpenAiEmbedder {
    opts: OpenAiOptions,
    url: String,
    client: Client,
    spec: EmbedderSpec,
    fingerprint: Fingerprint,
    /// splitmix64 state, for backoff jitter.
    rng: AtomicU64,
}

impl fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("url", &self.url)
            .field("spec", &self.spec)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// How one attempt failed.
enum Failure {
    /// Give up now.
    Fatal(EmbedError),
    /// Transient: try again after the backoff, or after `retry_after` when the server said so.
    Transient {
        msg: String,
        retry_after: Option<Duration>,
    },
    /// A 2xx answer that cannot be used.
    Invalid(String),
}

impl OpenAiEmbedder {
    /// Checks the options and builds the client; without `dimensions`, probes the provider once to
    /// learn the dimension (blocking, with retries; its failure is returned).
    ///
    /// Safe to call from inside an async runtime (the client is built and the probe run on a
    /// separate thread), but it then blocks that runtime's thread for the probe.
    pub fn new(opts: OpenAiOptions) -> Result<Self, EmbedError> {
        opts.validate()?;
        let url = format!("{}/embeddings", opts.base_url.trim_end_matches('/'));
        let timeout = opts.timeout;
        // reqwest's blocking client must not be built on a thread inside an async runtime.
        let client = std::thread::scope(|s| {
            s.spawn(move || {
                Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout.min(Duration::from_secs(10)))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
            })
            .join()
        })
        .map_err(|_| {
            EmbedError::Model("openai embedder: building the HTTP client panicked".into())
        })?
        .map_err(|e| {
            EmbedError::Model(format!(
                "openai embedder: cannot build the HTTP client: {}",
                chain(&e)
            ))
        })?;

        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32);
        let mut spec = EmbedderSpec {
            provider: "openai".into(),
            model: opts.model.clone(),
            revision: opts.model.clone(),
            dimensions: opts.dimensions.unwrap_or(0),
            pooling: "none".into(),
            normalized: true,
            max_tokens: 0,
            query_prefix: String::new(),
            document_prefix: String::new(),
        };
        let mut embedder = OpenAiEmbedder {
            opts,
            url,
            client,
            fingerprint: spec.fingerprint(),
            spec: spec.clone(),
            rng: AtomicU64::new(seed),
        };
        if embedder.opts.dimensions.is_none() {
            let probe = [Cow::Borrowed(PROBE_TEXT)];
            let never = AtomicBool::new(false);
            let embedder_ref = &embedder;
            let vectors = std::thread::scope(|s| {
                s.spawn(move || embedder_ref.embed_batch(&probe, None, 0, &never))
                    .join()
            })
            .map_err(|_| {
                EmbedError::Provider("openai embedder: the dimension probe panicked".into())
            })??;
            let dims = vectors.first().map_or(0, Vec::len);
            if dims > MAX_DIMENSIONS {
                return Err(EmbedError::Model(format!(
                    "openai embedder: model {:?} answers vectors of {dims} dimensions, more than {MAX_DIMENSIONS}",
                    embedder.opts.model
                )));
            }
            tracing::info!(model = %embedder.opts.model, dims, "probed the embedding dimension");
            spec.dimensions = dims;
            embedder.fingerprint = spec.fingerprint();
            embedder.spec = spec;
        }
        Ok(embedder)
    }

    /// Embeds one batch, retrying as documented; `dims` is the required dimension (`None`: any,
    /// as long as all vectors agree).
    fn embed_batch(
        &self,
        inputs: &[Cow<'_, str>],
        dims: Option<usize>,
        batch_no: usize,
        abort: &AtomicBool,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = serde_json::to_vec(&EmbeddingRequest {
            model: &self.opts.model,
            input: inputs,
            dimensions: self.opts.dimensions,
        })
        .map_err(|e| EmbedError::Input(format!("cannot encode the request: {e}")))?;
        let mut retries = 0u32;
        let mut invalid = 0u32;
        loop {
            let (msg, retry_after) = match self.attempt(&body, inputs.len(), dims) {
                Ok(vectors) => return Ok(vectors),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient { msg, retry_after }) => (msg, retry_after),
                Err(Failure::Invalid(msg)) => {
                    invalid += 1;
                    if invalid > MAX_INVALID_RETRIES {
                        return Err(self.gave_up(&msg, retries));
                    }
                    (msg, None)
                }
            };
            if retries >= self.opts.max_retries {
                return Err(self.gave_up(&msg, retries));
            }
            let delay = match retry_after {
                Some(d) => d.min(self.opts.backoff_max),
                None => self.backoff(retries),
            };
            tracing::warn!(
                batch = batch_no,
                retry = retries + 1,
                max_retries = self.opts.max_retries,
                delay_ms = delay.as_millis() as u64,
                "embedding request failed, retrying: {msg}"
            );
            if !sleep_unless(delay, abort) {
                return Err(EmbedError::Provider(
                    "cancelled because another batch failed".into(),
                ));
            }
            retries += 1;
        }
    }

    fn gave_up(&self, msg: &str, retries: u32) -> EmbedError {
        let attempts = retries + 1;
        let plural = if attempts == 1 { "" } else { "s" };
        EmbedError::Provider(format!(
            "POST {}: {msg} (gave up after {attempts} attempt{plural})",
            self.url
        ))
    }

    /// One request.
    fn attempt(
        &self,
        body: &[u8],
        n: usize,
        dims: Option<usize>,
    ) -> Result<Vec<Vec<f32>>, Failure> {
        let mut req = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(key) = &self.opts.api_key {
            req = req.bearer_auth(key);
        }
        let mut resp = req.send().map_err(|e| self.transport_failure(&e))?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // An error status's body only serves the message: read a little of it.
        let limit = if status.is_success() {
            MAX_BODY_BYTES + 1
        } else {
            MAX_ERROR_BODY_BYTES
        };
        let mut buf = Vec::new();
        let read = (&mut resp).take(limit).read_to_end(&mut buf);
        if status.is_success() {
            if let Err(e) = read {
                return Err(Failure::Transient {
                    msg: format!("reading the response failed: {e}"),
                    retry_after: None,
                });
            }
            if buf.len() as u64 > MAX_BODY_BYTES {
                return Err(Failure::Invalid(format!(
                    "the response is larger than {MAX_BODY_BYTES} bytes"
                )));
            }
            return parse_response(&buf, n, dims).map_err(Failure::Invalid);
        }
        let msg = format!("HTTP {status}{}", provider_message(&buf));
        if status.is_redirection() {
            return Err(Failure::Fatal(EmbedError::Model(format!(
                "POST {} answered {msg}, redirecting to {}; set base_url to the final URL",
                self.url,
                location.as_deref().unwrap_or("(no location)")
            ))));
        }
        if status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
        {
            return Err(Failure::Transient { msg, retry_after });
        }
        let hint = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Some("check the API key and its permissions")
            }
            StatusCode::NOT_FOUND => Some("check base_url (it should end in /v1) and the model"),
            _ => None,
        };
        Err(Failure::Fatal(match hint {
            Some(hint) => EmbedError::Model(format!("POST {}: {msg}; {hint}", self.url)),
            None => EmbedError::Provider(format!("POST {}: {msg}", self.url)),
        }))
    }

    fn transport_failure(&self, e: &reqwest::Error) -> Failure {
        if e.is_builder() {
            return Failure::Fatal(EmbedError::Model(format!(
                "openai embedder: cannot build the request: {}",
                chain(e)
            )));
        }
        let msg = if e.is_timeout() {
            format!("timed out after {:?}", self.opts.timeout)
        } else if e.is_connect() {
            format!("cannot connect: {}", chain(e))
        } else {
            chain(e)
        };
        Failure::Transient {
            msg,
            retry_after: None,
        }
    }

    /// Full jitter: uniform in `0..=min(backoff_max, backoff_base * 2^retry)`.
    fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .opts
            .backoff_base
            .saturating_mul(1u32 << retry.min(20))
            .min(self.opts.backoff_max);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_random() % nanos.saturating_add(1))
    }

    /// splitmix64 over an atomic counter: lock-free and good enough for jitter.
    fn next_random(&self) -> u64 {
        use quarry_core::rng::{GAMMA, mix};
        mix(self
            .rng
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA))
    }
}

impl Embedder for OpenAiEmbedder {
    fn spec(&self) -> &EmbedderSpec {
        &self.spec
    }

    fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Empty texts are refused ([`EmbedError::Input`]): OpenAI rejects them.
    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<Cow<'_, str>> = texts.iter().map(|t| self.spec.prefixed(t, kind)).collect();
        if let Some(i) = inputs.iter().position(|t| t.is_empty()) {
            return Err(EmbedError::Input(format!(
                "text {i} is empty; the provider cannot embed an empty text"
            )));
        }
        let batches: Vec<&[Cow<'_, str>]> = inputs.chunks(self.opts.batch_size).collect();
        let dims = Some(self.spec.dimensions);
        let next = AtomicUsize::new(0);
        let abort = AtomicBool::new(false);
        let first_error: Mutex<Option<EmbedError>> = Mutex::new(None);
        let workers = self.opts.max_concurrency.min(batches.len());
        // Always on worker threads, even for one batch: reqwest's blocking client must not run on
        // a thread inside an async runtime, and the caller's thread might be one.
        let done: Vec<(usize, Vec<Vec<f32>>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            if abort.load(Ordering::Acquire) {
                                break;
                            }
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(batch) = batches.get(i) else { break };
                            match self.embed_batch(batch, dims, i, &abort) {
                                Ok(vectors) => mine.push((i, vectors)),
                                Err(e) => {
                                    // The first failure wins; later ones are its consequences.
                                    if !abort.swap(true, Ordering::AcqRel) {
                                        *first_error
                                            .lock()
                                            .unwrap_or_else(PoisonError::into_inner) = Some(e);
                                    }
                                    break;
                                }
                            }
                        }
                        mine
                    })
                })
                .collect();
            let mut done = Vec::with_capacity(batches.len());
            for h in handles {
                match h.join() {
                    Ok(mine) => done.extend(mine),
                    Err(_) => {
                        abort.store(true, Ordering::Release);
                        let mut slot = first_error.lock().unwrap_or_else(PoisonError::into_inner);
                        slot.get_or_insert_with(|| {
                            EmbedError::Provider("an embedding worker thread panicked".into())
                        });
                    }
                }
            }
            done
        });
        if let Some(e) = first_error
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(e);
        }
        let mut slots: Vec<Option<Vec<Vec<f32>>>> = vec![None; batches.len()];
        for (i, vectors) in done {
            if let Some(slot) = slots.get_mut(i) {
                *slot = Some(vectors);
            }
        }
        let mut out = Vec::with_capacity(texts.len());
        for slot in slots {
            match slot {
                Some(vectors) => out.extend(vectors),
                None => {
                    return Err(EmbedError::Provider(
                        "internal error: a batch was never embedded".into(),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Sleeps `d` in short slices; false (early) once `abort` is set.
fn sleep_unless(d: Duration, abort: &AtomicBool) -> bool {
    const SLICE: Duration = Duration::from_millis(50);
    let end = Instant::now() + d;
    loop {
        if abort.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(SLICE));
    }
}

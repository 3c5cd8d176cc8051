//! An embedder for any OpenAI-compatible `POST {base_url}/embeddings` endpoint.
//!
//! Texts are sent in batches of [`OpenAiOptions::batch_size`], at most
//! [`OpenAiOptions::max_concurrency`] batches in flight at once (scoped OS threads over one blocking
//! `reqwest` client: no async runtime is needed, and none may be entered, so call it from sync code
//! or from inside `tokio::task::spawn_blocking`).
//!
//! Failures, per batch:
//! - **Retried** with exponential backoff and full jitter (a delay drawn uniformly from
//!   `0..=min(backoff_max, backoff_base * 2^retry)`), at most `max_retries` times: connection
//!   errors and resets, timeouts (each request is bounded by [`OpenAiOptions::timeout`]), HTTP 408,
//!   429 and 5xx. A `Retry-After` header in seconds on such a response replaces the jittered delay
//!   (capped by `backoff_max`); the HTTP-date form is ignored.
//! - **Not retried**: every other 4xx fails at once with the provider's own error message. 401 and
//!   403 (the API key) and 404 (`base_url` or model) are [`EmbedError::Model`], the others
//!   [`EmbedError::Provider`]. A redirect is not followed (a POST would turn into a GET): it is an
//!   [`EmbedError::Model`] naming the new location.
//! - **Unusable answers** (a 2xx whose body is not the expected JSON, has the wrong number of
//!   vectors, a missing, duplicate or out-of-range `index`, a vector of the wrong dimension, or a
//!   non-finite value) are retried **once** (it may be a proxy glitch; a second bad answer is not),
//!   within the same `max_retries` budget, then fail with [`EmbedError::Provider`].
//!
//! When one batch fails for good, batches not yet started are abandoned, and `embed` returns that
//! error.
//!
//! Vectors are ordered by each item's `index` (providers may answer out of order) and
//! L2-normalised, so the spec says `normalized: true` and cosine and dot product agree.
//!
//! **Dimensions.** With [`OpenAiOptions::dimensions`] set, it is sent as the request's `dimensions`
//! (models that support shortening honour it) and every vector must have it. Without it,
//! [`OpenAiEmbedder::new`] probes the provider once with a short text and takes the dimension of the
//! answer (then `new` blocks on the network, with the same retries as `embed`), and `dimensions` is
//! never sent.
//!
//! The spec is `provider = "openai"`, `model` and `revision` = the model string, `pooling = "none"`,
//! `max_tokens = 0` (provider-defined), no prefixes. Nothing else (URL, key, batching, timeouts)
//! enters the fingerprint. The API key never appears in errors, logs or `Debug` output.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quarry_core::embed::normalize;
use quarry_core::{EmbedError, Embedder, EmbedderSpec, Fingerprint, InputKind};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};

pub const DEFAULT_BATCH_SIZE: usize = 64;
pub const DEFAULT_MAX_CONCURRENCY: usize = 4;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_RETRIES: u32 = 5;
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(250);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(20);

/// Largest accepted `dimensions`.
pub const MAX_DIMENSIONS: usize = 65_536;
/// Retries granted to unusable 2xx answers (within `max_retries`).
const MAX_INVALID_RETRIES: u32 = 1;
/// Largest response body read; a larger one is an unusable answer.
const MAX_BODY_BYTES: u64 = 256 << 20;
/// Most of an error body read.
const MAX_ERROR_BODY_BYTES: u64 = 64 << 10;
/// Longest provider error message quoted in an error.
const MAX_MESSAGE_CHARS: usize = 400;
/// The text sent to learn the dimension when none is configured.
const PROBE_TEXT: &str = "dimension probe";

/// How to reach the provider and how hard to try. Only `model` and `dimensions` change the vectors
/// (and so the fingerprint).
#[derive(Clone)]
pub struct OpenAiOptions {
    /// E.g. `http://127.0.0.1:7879/v1` or `https://api.openai.com/v1`; a trailing `/` is fine.
    pub base_url: String,
    /// The provider's model string, e.g. `text-embedding-3-small`.
    pub model: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// Requested and required vector dimension; `None` probes the provider in `new`.
    pub dimensions: Option<usize>,
    /// Texts per request (default 64).
    pub batch_size: usize,
    /// Requests in flight at once per `embed` call (default 4).
    pub max_concurrency: usize,
    /// Bound on one request, connect to last byte (default 30 s).
    pub timeout: Duration,
    /// Retries of one batch after its first attempt (default 5).
    pub max_retries: u32,
    /// First backoff ceiling (default 250 ms); doubles with each retry.
    pub backoff_base: Duration,
    /// Largest backoff, and cap on a `Retry-After` wait (default 20 s).
    pub backoff_max: Duration,
}

impl OpenAiOptions {
    /// Options with every default: no key, dimensions probed.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiOptions {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            dimensions: None,
            batch_size: DEFAULT_BATCH_SIZE,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
        }
    }

    fn validate(&self) -> Result<(), EmbedError> {
        let bad = |msg: String| Err(EmbedError::Model(msg));
        if self.model.trim().is_empty() {
            return bad("openai embedder: model is empty; set the provider's model string".into());
        }
        match reqwest::Url::parse(&self.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            Ok(_) => {
                return bad(format!(
                    "openai embedder base_url {:?}: use an http:// or https:// URL such as http://127.0.0.1:7879/v1",
                    self.base_url
                ));
            }
            Err(e) => {
                return bad(format!(
                    "openai embedder base_url {:?} is not a URL ({e}); use e.g. http://127.0.0.1:7879/v1",
                    self.base_url
                ));
            }
        }
        if let Some(d) = self.dimensions
            && (d == 0 || d > MAX_DIMENSIONS)
        {
            return bad(format!(
                "openai embedder dimensions {d}: use 1 to {MAX_DIMENSIONS}, or leave unset to ask the provider"
            ));
        }
        if self.batch_size == 0 {
            return bad("openai embedder batch_size 0: use at least 1".into());
        }
        if self.max_concurrency == 0 {
            return bad("openai embedder max_concurrency 0: use at least 1".into());
        }
        if self.timeout.is_zero() {
            return bad("openai embedder timeout 0: use a positive duration".into());
        }
        if self
            .api_key
            .as_deref()
            .is_some_and(|k| k.is_empty() || k.chars().any(|c| c.is_control()))
        {
            return bad("openai embedder api_key is empty or contains control characters".into());
        }
        Ok(())
    }
}

impl fmt::Debug for OpenAiOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiOptions")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("dimensions", &self.dimensions)
            .field("batch_size", &self.batch_size)
            .field("max_concurrency", &self.max_concurrency)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .finish()
    }
}

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

#[derive(serde::Serialize)]
struct EmbeddingRequest<'a> {
    model: &'a str,
    input: &'a [Cow<'a, str>],
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(serde::Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(serde::Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
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

/// Checks a 2xx body and returns its vectors in input order, L2-normalised.
fn parse_response(body: &[u8], n: usize, dims: Option<usize>) -> Result<Vec<Vec<f32>>, String> {
    let resp: EmbeddingResponse = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the response is not embeddings JSON ({e}); it starts with {:?}",
            snippet(&String::from_utf8_lossy(body), 120)
        )
    })?;
    if resp.data.len() != n {
        return Err(format!(
            "the response has {} vectors for {n} inputs",
            resp.data.len()
        ));
    }
    let mut expected = dims;
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; n];
    for item in resp.data {
        let index = item.index;
        let Some(slot) = slots.get_mut(index) else {
            return Err(format!(
                "the response has index {index}, out of range for {n} inputs"
            ));
        };
        if slot.is_some() {
            return Err(format!("the response has index {index} twice"));
        }
        let len = item.embedding.len();
        let want = *expected.get_or_insert(len);
        if len == 0 || len != want {
            return Err(format!(
                "the vector at index {index} has {len} dimensions, expected {want}"
            ));
        }
        if item.embedding.iter().any(|x| !x.is_finite()) {
            return Err(format!(
                "the vector at index {index} has a non-finite value"
            ));
        }
        let mut v = item.embedding;
        normalize(&mut v);
        *slot = Some(v);
    }
    // n items, all in range, none twice: every slot is filled.
    slots
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| format!("the response lacks index {i}")))
        .collect()
}

/// `Retry-After` in seconds, if present and in that form.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// `": <message>"` from an error body: OpenAI's `{"error": {"message": ..}}`, the common variants,
/// or the start of the raw text; empty when there is nothing to say.
fn provider_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let from_json = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let pick = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            };
            v.pointer("/error/message")
                .and_then(pick)
                .or_else(|| v.get("error").filter(|e| e.is_string()).and_then(pick))
                .or_else(|| v.get("message").and_then(pick))
                .or_else(|| v.get("detail").and_then(pick))
        });
    let msg = from_json.unwrap_or_else(|| text.trim().to_owned());
    let msg = snippet(msg.trim(), MAX_MESSAGE_CHARS);
    if msg.is_empty() {
        String::new()
    } else {
        format!(": {msg}")
    }
}

/// At most `max` characters of `s`, with `…` when cut.
fn snippet(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// An error and its sources, joined by `: ` (reqwest hides the cause, e.g. "connection reset").
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
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

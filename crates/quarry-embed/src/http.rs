//! One JSON `POST` with bounded time and bounded retries, shared by the HTTP clients of this crate
//! (the OpenAI-compatible embedder and the reranker): a blocking `reqwest` client without
//! redirects, the retry loop with exponential backoff and full jitter, `Retry-After`, and the
//! provider's own error message.
//!
//! - **Retried**, at most `max_retries` times: connection errors, timeouts, HTTP 408, 429 and
//!   5xx. The delay is drawn uniformly from `0..=min(backoff_max, backoff_base * 2^retry)`; a
//!   `Retry-After` header in seconds replaces it (capped by `backoff_max`).
//! - **Not retried**: other 4xx (401, 403 and 404 blame the configuration, the rest the
//!   provider) and redirects (a POST would turn into a GET).
//! - **Unusable answers** (a 2xx the caller's parser refuses) are retried once within the same
//!   budget: it may be a proxy glitch, a second one is not.
//! - **Deadline**: a call may carry one; no request outlives it and no retry starts that could not
//!   finish before it.
//!
//! `reqwest` does the HTTP; what is ours is the policy above, which its blocking client does not
//! offer (it has no retries).

use quarry_core::rng::{GAMMA, mix};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Retries granted to unusable 2xx answers (within `max_retries`).
const MAX_INVALID_RETRIES: u32 = 1;
/// Largest response body read; a larger one is an unusable answer.
const MAX_BODY_BYTES: u64 = 256 << 20;
/// Most of an error body read.
const MAX_ERROR_BODY_BYTES: u64 = 64 << 10;
/// Longest provider error message quoted in an error.
const MAX_MESSAGE_CHARS: usize = 400;

/// Where to POST and how hard to try.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) url: String,
    /// Sent as `Authorization: Bearer <key>` when set; never shown.
    pub(crate) api_key: Option<String>,
    /// Bound on one request, connect to last byte.
    pub(crate) timeout: Duration,
    /// Retries after the first attempt.
    pub(crate) max_retries: u32,
    /// First backoff ceiling; doubles with each retry.
    pub(crate) backoff_base: Duration,
    /// Largest backoff, and cap on a `Retry-After` wait.
    pub(crate) backoff_max: Duration,
    /// What the client is called in messages ("openai embedder", "reranker").
    pub(crate) what: &'static str,
    /// The option that sets the URL ("base_url", "url"), named when a redirect says it is wrong.
    pub(crate) url_option: &'static str,
    /// Said after a 404: what to check.
    pub(crate) not_found_hint: &'static str,
}

/// Why a POST failed for good.
#[derive(Debug)]
pub(crate) enum PostError {
    /// The configuration is wrong (key, URL, model): 401, 403, 404, a redirect, a request that
    /// cannot be built.
    Config(String),
    /// The provider failed, timed out or answered something unusable, after any retries; or the
    /// call was abandoned.
    Provider(String),
}

/// How one attempt failed.
enum Failure {
    Fatal(PostError),
    /// Try again after the backoff, or after `retry_after` when the server said so.
    Transient {
        msg: String,
        retry_after: Option<Duration>,
    },
    /// A 2xx answer that cannot be used.
    Invalid(String),
}

/// A blocking client for one endpoint. Cheap to share across threads; must not be used on a
/// thread inside an async runtime (call it from a thread of its own).
pub(crate) struct Poster {
    endpoint: Endpoint,
    client: Client,
    /// splitmix64 state, for backoff jitter.
    rng: AtomicU64,
}

impl Poster {
    /// Builds the client (on a thread of its own: reqwest's blocking client must not be built on
    /// a thread inside an async runtime).
    pub(crate) fn new(endpoint: Endpoint) -> Result<Self, String> {
        let timeout = endpoint.timeout;
        let what = endpoint.what;
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
        .map_err(|_| format!("{what}: building the HTTP client panicked"))?
        .map_err(|e| format!("{what}: cannot build the HTTP client: {}", chain(&e)))?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32);
        Ok(Poster {
            endpoint,
            client,
            rng: AtomicU64::new(seed),
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.endpoint.url
    }

    /// POSTs the JSON `body` and reads a 2xx answer with `parse`, retrying as the module says;
    /// gives up when `abort` is set (between attempts) or `deadline` would pass. `label` names
    /// the call in log lines (a batch number).
    pub(crate) fn post<T>(
        &self,
        body: &[u8],
        parse: &dyn Fn(&[u8]) -> Result<T, String>,
        label: usize,
        abort: &AtomicBool,
        deadline: Option<Instant>,
    ) -> Result<T, PostError> {
        let e = &self.endpoint;
        let mut retries = 0u32;
        let mut invalid = 0u32;
        loop {
            let timeout = match deadline {
                Some(d) => e.timeout.min(d.saturating_duration_since(Instant::now())),
                None => e.timeout,
            };
            let (msg, retry_after) = match self.attempt(body, parse, timeout) {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient { msg, retry_after }) => (msg, retry_after),
                Err(Failure::Invalid(msg)) => {
                    invalid += 1;
                    if invalid > MAX_INVALID_RETRIES {
                        return Err(self.gave_up(&msg, retries, ""));
                    }
                    (msg, None)
                }
            };
            if retries >= e.max_retries {
                return Err(self.gave_up(&msg, retries, ""));
            }
            let delay = match retry_after {
                Some(d) => d.min(e.backoff_max),
                None => self.backoff(retries),
            };
            if let Some(d) = deadline
                && Instant::now() + delay >= d
            {
                return Err(self.gave_up(&msg, retries, "; no time left to retry"));
            }
            tracing::warn!(
                call = label,
                retry = retries + 1,
                max_retries = e.max_retries,
                delay_ms = delay.as_millis() as u64,
                "{} request failed, retrying: {msg}",
                e.what
            );
            if !sleep_unless(delay, abort) {
                return Err(PostError::Provider(
                    "cancelled because another batch failed".into(),
                ));
            }
            retries += 1;
        }
    }

    fn gave_up(&self, msg: &str, retries: u32, why: &str) -> PostError {
        let attempts = retries + 1;
        let plural = if attempts == 1 { "" } else { "s" };
        PostError::Provider(format!(
            "POST {}: {msg} (gave up after {attempts} attempt{plural}{why})",
            self.endpoint.url
        ))
    }

    /// One request, bounded by `timeout`.
    fn attempt<T>(
        &self,
        body: &[u8],
        parse: &dyn Fn(&[u8]) -> Result<T, String>,
        timeout: Duration,
    ) -> Result<T, Failure> {
        let e = &self.endpoint;
        if timeout.is_zero() {
            return Err(Failure::Transient {
                msg: "no time left for a request".into(),
                retry_after: None,
            });
        }
        let mut req = self
            .client
            .post(&e.url)
            .timeout(timeout)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(key) = &e.api_key {
            req = req.bearer_auth(key);
        }
        let mut resp = req
            .send()
            .map_err(|err| self.transport_failure(&err, timeout))?;
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
            if let Err(err) = read {
                let msg = if err.to_string().contains("timed out") {
                    format!("timed out after {timeout:?} reading the response")
                } else {
                    format!("reading the response failed: {err}")
                };
                return Err(Failure::Transient {
                    msg,
                    retry_after: None,
                });
            }
            if buf.len() as u64 > MAX_BODY_BYTES {
                return Err(Failure::Invalid(format!(
                    "the response is larger than {MAX_BODY_BYTES} bytes"
                )));
            }
            return parse(&buf).map_err(Failure::Invalid);
        }
        let msg = format!("HTTP {status}{}", provider_message(&buf));
        if status.is_redirection() {
            return Err(Failure::Fatal(PostError::Config(format!(
                "POST {} answered {msg}, redirecting to {}; set {} to the final URL",
                e.url,
                location.as_deref().unwrap_or("(no location)"),
                e.url_option
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
            StatusCode::NOT_FOUND => Some(e.not_found_hint),
            _ => None,
        };
        Err(Failure::Fatal(match hint {
            Some(hint) => PostError::Config(format!("POST {}: {msg}; {hint}", e.url)),
            None => PostError::Provider(format!("POST {}: {msg}", e.url)),
        }))
    }

    fn transport_failure(&self, e: &reqwest::Error, timeout: Duration) -> Failure {
        if e.is_builder() {
            return Failure::Fatal(PostError::Config(format!(
                "{}: cannot build the request: {}",
                self.endpoint.what,
                chain(e)
            )));
        }
        let msg = if e.is_timeout() {
            format!("timed out after {timeout:?}")
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
        let e = &self.endpoint;
        let ceiling = e
            .backoff_base
            .saturating_mul(1u32 << retry.min(20))
            .min(e.backoff_max);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_random() % nanos.saturating_add(1))
    }

    /// splitmix64 over an atomic counter: lock-free and good enough for jitter.
    fn next_random(&self) -> u64 {
        mix(self
            .rng
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA))
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

/// `": <message>"` from an error body: OpenAI's `{"error": {"message": ..}}`, the common variants
/// (`{"error": ".."}` as TEI answers, `{"message": ..}` as Cohere does, `{"detail": ..}`), or the
/// start of the raw text; empty when there is nothing to say.
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
pub(crate) fn snippet(s: &str, max: usize) -> String {
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

//! The embedder itself: batching, bounded concurrency, attempts, retries with backoff and jitter,
//! and the probe of the dimension.

use super::options::{MAX_DIMENSIONS, OpenAiOptions};
use super::wire::{EmbeddingRequest, parse_response};
use crate::http::{Endpoint, PostError, Poster};
use quarry_core::{EmbedError, Embedder, EmbedderSpec, Fingerprint, InputKind};
use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
/// The text sent to learn the dimension when none is configured.
const PROBE_TEXT: &str = "dimension probe";

/// The OpenAI-compatible HTTP embedder. Cheap to share across threads.
pub struct OpenAiEmbedder {
    opts: OpenAiOptions,
    http: Poster,
    spec: EmbedderSpec,
    fingerprint: Fingerprint,
}

impl fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("url", &self.http.url())
            .field("spec", &self.spec)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl OpenAiEmbedder {
    /// Checks the options and builds the client; without `dimensions`, probes the provider once to
    /// learn the dimension (blocking, with retries; its failure is returned).
    ///
    /// Safe to call from inside an async runtime (the client is built and the probe run on a
    /// separate thread), but it then blocks that runtime's thread for the probe.
    pub fn new(opts: OpenAiOptions) -> Result<Self, EmbedError> {
        opts.validate()?;
        let http = Poster::new(Endpoint {
            url: format!("{}/embeddings", opts.base_url.trim_end_matches('/')),
            api_key: opts.api_key.clone(),
            timeout: opts.timeout,
            max_retries: opts.max_retries,
            backoff_base: opts.backoff_base,
            backoff_max: opts.backoff_max,
            what: "openai embedder",
            url_option: "base_url",
            not_found_hint: "check base_url (it should end in /v1) and the model",
        })
        .map_err(EmbedError::Model)?;
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
            http,
            fingerprint: spec.fingerprint(),
            spec: spec.clone(),
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
        let n = inputs.len();
        let parse = |buf: &[u8]| parse_response(buf, n, dims);
        self.http
            .post(&body, &parse, batch_no, abort, None)
            .map_err(|e| match e {
                PostError::Config(msg) => EmbedError::Model(msg),
                PostError::Provider(msg) => EmbedError::Provider(msg),
            })
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

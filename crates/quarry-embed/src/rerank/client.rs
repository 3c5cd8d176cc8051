//! [`HttpReranker`]: the [`Reranker`] over HTTP, one bounded `POST` per call.

use super::options::RerankOptions;
use super::wire::{parse, request};
use crate::http::{Endpoint, PostError, Poster};
use quarry_core::{RerankError, Reranker};
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// A reranking service reached over HTTP. Cheap to share across threads.
pub struct HttpReranker {
    opts: RerankOptions,
    http: Poster,
}

impl fmt::Debug for HttpReranker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpReranker")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl HttpReranker {
    /// Checks the options and builds the client; nothing is sent until the first call.
    pub fn new(opts: RerankOptions) -> Result<Self, RerankError> {
        opts.validate()?;
        let http = Poster::new(Endpoint {
            url: opts.url.clone(),
            api_key: opts.api_key.clone(),
            timeout: opts.timeout,
            max_retries: opts.max_retries,
            backoff_base: opts.backoff_base,
            backoff_max: opts.backoff_max,
            what: "reranker",
            url_option: "reranker.url",
            not_found_hint: "check reranker.url (the full endpoint, e.g. http://127.0.0.1:8080/rerank), its format and model",
        })
        .map_err(RerankError::Config)?;
        Ok(HttpReranker { opts, http })
    }
}

impl Reranker for HttpReranker {
    fn rerank(&self, query: &str, documents: &[&str]) -> Result<Vec<f32>, RerankError> {
        if documents.is_empty() {
            return Ok(Vec::new());
        }
        if documents.len() > self.opts.max_top_n {
            return Err(RerankError::Config(format!(
                "{} passages to rerank; reranker.max_top_n is {}",
                documents.len(),
                self.opts.max_top_n
            )));
        }
        let deadline = Instant::now() + self.opts.timeout;
        let format = self.opts.format;
        let body = request(format, self.opts.model.as_deref(), query, documents);
        let body = serde_json::to_vec(&body)
            .map_err(|e| RerankError::Provider(format!("cannot encode the request: {e}")))?;
        let n = documents.len();
        let read = |buf: &[u8]| parse(format, buf, n);
        let never = AtomicBool::new(false);
        // On a thread of its own: reqwest's blocking client must not run on a thread inside an
        // async runtime, and the caller's thread might be one.
        std::thread::scope(|s| {
            s.spawn(|| self.http.post(&body, &read, 0, &never, Some(deadline)))
                .join()
        })
        .map_err(|_| RerankError::Provider("the reranking thread panicked".into()))?
        .map_err(|e| match e {
            PostError::Config(msg) => RerankError::Config(msg),
            PostError::Provider(msg) => RerankError::Provider(msg),
        })
    }

    fn max_documents(&self) -> usize {
        self.opts.max_top_n
    }
}

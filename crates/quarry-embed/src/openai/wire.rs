//! The provider's wire format: the request body, the answer, and how an answer or an error body
//! is read (a checked, ordered, L2-normalised set of vectors; the provider's own error message;
//! `Retry-After`).

use quarry_core::embed::normalize;
use reqwest::header::RETRY_AFTER;
use std::borrow::Cow;
use std::time::Duration;

/// Longest provider error message quoted in an error.
const MAX_MESSAGE_CHARS: usize = 400;

#[derive(serde::Serialize)]
pub(super) struct EmbeddingRequest<'a> {
    pub(super) model: &'a str,
    pub(super) input: &'a [Cow<'a, str>],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) dimensions: Option<usize>,
}

#[derive(serde::Deserialize)]
pub(super) struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(serde::Deserialize)]
pub(super) struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

/// Checks a 2xx body and returns its vectors in input order, L2-normalised.
pub(super) fn parse_response(
    body: &[u8],
    n: usize,
    dims: Option<usize>,
) -> Result<Vec<Vec<f32>>, String> {
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
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
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
pub(super) fn provider_message(body: &[u8]) -> String {
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
pub(super) fn chain(e: &dyn std::error::Error) -> String {
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

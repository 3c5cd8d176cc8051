//! The provider's wire format: the request body, the answer, and how an answer is read (a
//! checked, ordered, L2-normalised set of vectors). Errors, retries and `Retry-After` are
//! `crate::http`'s.

use crate::http::snippet;
use quarry_core::embed::normalize;
use std::borrow::Cow;

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

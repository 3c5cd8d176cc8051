//! Which embedder a Parquet file's schema metadata names: either a full `embedder_spec` JSON
//! (what `quarry export chunks` and `quarry embed` write), or the keys `model` (an `org/` prefix
//! is dropped), `model_safetensors_sha256` (or `revision`), `pooling`, `normalized`,
//! `max_seq_length` (or `max_tokens`), and optionally `provider` (default `local`),
//! `query_prefix`, `document_prefix` (what a sentence-transformers script writes).

use crate::error::{Error, Result};
use quarry_core::EmbedderSpec;
use std::collections::HashMap;

/// The schema metadata key of the canonical JSON of the embedder spec.
pub const SPEC_KEY: &str = "embedder_spec";
/// The schema metadata key of the spec's fingerprint (hex), for people and other tools.
pub const FINGERPRINT_KEY: &str = "embedder_fingerprint";
/// The schema metadata key of the configured name of the embedder (a hint: the spec decides).
pub const NAME_KEY: &str = "embedder_name";

/// [`Error::Input`] with a formatted message.
macro_rules! input {
    ($($arg:tt)*) => {
        Error::Input(format!($($arg)*))
    };
}

/// Returns [`Error::Input`] with a formatted message.
macro_rules! bail_input {
    ($($arg:tt)*) => {
        return Err(input!($($arg)*))
    };
}

/// The spec a file's schema metadata describes, without its dimensions (`None` when the metadata
/// names no model at all).
pub(crate) fn spec_from_metadata(
    file: &str,
    meta: &HashMap<String, String>,
) -> Result<Option<EmbedderSpec>> {
    if let Some(json) = meta.get(SPEC_KEY) {
        return serde_json::from_str::<EmbedderSpec>(json).map(Some).map_err(|e| {
            input!(
                "{file}: the `embedder_spec` schema metadata is not a valid embedder spec: {e}; \
                 fix it, or pass --vectors-spec"
            )
        });
    }
    let Some(model) = meta.get("model") else {
        return Ok(None);
    };
    let get = |keys: &[&str]| keys.iter().find_map(|k| meta.get(*k)).map(|v| v.trim());
    let mut missing = Vec::new();
    let revision = get(&["model_safetensors_sha256", "revision"]);
    if revision.is_none() {
        missing.push("model_safetensors_sha256 (or revision)");
    }
    let pooling = get(&["pooling"]);
    if pooling.is_none() {
        missing.push("pooling");
    }
    let normalized = get(&["normalized"]);
    if normalized.is_none() {
        missing.push("normalized");
    }
    let max_tokens = get(&["max_seq_length", "max_tokens"]);
    if max_tokens.is_none() {
        missing.push("max_seq_length (or max_tokens)");
    }
    let (Some(revision), Some(pooling), Some(normalized), Some(max_tokens)) =
        (revision, pooling, normalized, max_tokens)
    else {
        bail_input!(
            "{file}: its schema metadata names model `{model}` but lacks {}; add them when writing \
             the file, or pass --vectors-spec NAME (a configured embedder, e.g. local) or \
             --vectors-spec '{{...}}' (the embedder spec as JSON)",
            missing.join(", ")
        );
    };
    let normalized = match normalized.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => true,
        "false" | "0" | "no" => false,
        other => bail_input!(
            "{file}: schema metadata `normalized` is `{other}`; expected true or false (or pass --vectors-spec)"
        ),
    };
    let max_tokens: usize = max_tokens.parse().map_err(|_| {
        input!(
            "{file}: schema metadata `max_seq_length` is `{max_tokens}`; expected a whole number \
             of tokens (or pass --vectors-spec)"
        )
    })?;
    let model = model.trim();
    let model = model.rsplit_once('/').map_or(model, |(_, m)| m);
    Ok(Some(EmbedderSpec {
        provider: get(&["provider"]).unwrap_or("local").to_owned(),
        model: model.to_owned(),
        revision: revision.to_owned(),
        dimensions: 0,
        pooling: pooling.to_owned(),
        normalized,
        max_tokens,
        query_prefix: meta.get("query_prefix").cloned().unwrap_or_default(),
        document_prefix: meta.get("document_prefix").cloned().unwrap_or_default(),
    }))
}

#[cfg(test)]
#[path = "spec_metadata_tests.rs"]
mod tests;

//! The static embedder: a table of one vector per vocabulary token, the model2vec idea. A text's
//! vector is the L2-normalised mean of its tokens' rows; there is no network to run, so it embeds
//! two to three orders of magnitude faster than the transformer it was distilled from
//! ([`crate::distill`]), at a lower retrieval quality.
//!
//! A model is a folder in model2vec's layout, so that the folders `quarry model distill` writes
//! and model2vec's own models (potion-base-*, M2V_*) load alike:
//! - `model.safetensors`: one tensor `embeddings`, `[vocabulary, dimensions]` (f32, f16, bf16 or
//!   f64; read as f32);
//! - `tokenizer.json`: the tokenizer; texts are tokenized without special tokens and the unknown
//!   token is dropped, as model2vec does;
//! - `config.json`: `normalize` (default true) and anything else model2vec writes (not read).
//!
//! The spec's revision is the sha256 of `model.safetensors` and `tokenizer.json` ([`revision`]),
//! so a re-distilled or edited model is another embedder with its own fingerprint. Texts are truncated at [`MAX_TOKENS`] tokens
//! (model2vec's default `max_length`).

use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use quarry_core::embed::normalize;
use quarry_core::{EmbedError, Embedder, EmbedderSpec, Fingerprint, InputKind};
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::fetch::hex;

/// Tokens of a text that count; the rest is cut.
pub const MAX_TOKENS: usize = 512;

/// The name of the table in `model.safetensors`.
pub const TENSOR: &str = "embeddings";

/// An optional tensor of `model.safetensors` (u32, one per row): how many of the teacher's tokens
/// a row stands for, more than 1 for a word `quarry model distill --vocabulary` added. Tokens are
/// counted by it, so a model with added words still sizes chunks as its teacher does.
pub const PIECES: &str = "token_pieces";

/// A static token-embedding model loaded from a model2vec folder.
pub struct StaticEmbedder {
    spec: EmbedderSpec,
    fingerprint: Fingerprint,
    /// `vocabulary × dimensions`, row-major.
    table: Vec<f32>,
    /// [`PIECES`]; empty when every row is one token.
    pieces: Vec<u32>,
    tokenizer: Tokenizer,
    unk_id: Option<u32>,
    dir: PathBuf,
}

#[derive(serde::Deserialize)]
struct StaticConfig {
    #[serde(default = "yes")]
    normalize: bool,
    /// Written by `quarry model distill`.
    #[serde(default)]
    quarry: Option<Provenance>,
}

#[derive(serde::Deserialize)]
struct Provenance {
    revision: Option<String>,
}

/// A static model's revision: the sha256 of its `model.safetensors` followed by its
/// `tokenizer.json` (the same table with another vocabulary is another model).
pub(crate) fn revision(weights: &[u8], tokenizer: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(weights);
    h.update(tokenizer);
    hex(&h.finalize())
}

fn yes() -> bool {
    true
}

fn model_err(dir: &Path, what: impl std::fmt::Display) -> EmbedError {
    EmbedError::Model(format!(
        "static model {}: {what}; run `quarry model distill` to build the built-in one, or point \
         embedders.NAME.model_dir at a model2vec folder (model.safetensors with an `{TENSOR}` \
         tensor, tokenizer.json, config.json)",
        dir.display()
    ))
}

impl StaticEmbedder {
    /// Loads the model in `dir`; `name` becomes the spec's model name.
    pub fn load(dir: &Path, name: &str) -> Result<Self, EmbedError> {
        if !dir.is_dir() {
            return Err(model_err(dir, "the folder does not exist"));
        }
        let config: StaticConfig = match fs::read(dir.join("config.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| model_err(dir, format!("config.json is not valid: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StaticConfig {
                normalize: true,
                quarry: None,
            },
            Err(e) => return Err(model_err(dir, format!("cannot read config.json: {e}"))),
        };
        let tokenizer_bytes = fs::read(dir.join("tokenizer.json"))
            .map_err(|e| model_err(dir, format!("cannot read tokenizer.json: {e}")))?;
        let mut tokenizer = Tokenizer::from_bytes(&tokenizer_bytes)
            .map_err(|e| model_err(dir, format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| model_err(dir, format!("tokenizer: {e}")))?;
        let unk_id = unknown_token(&tokenizer);

        let weights = fs::read(dir.join("model.safetensors"))
            .map_err(|e| model_err(dir, format!("cannot read model.safetensors: {e}")))?;
        let revision = revision(&weights, &tokenizer_bytes);
        if let Some(expected) = config.quarry.and_then(|q| q.revision)
            && expected != revision
        {
            return Err(model_err(
                dir,
                format!(
                    "model.safetensors or tokenizer.json is damaged: their sha256 is {revision}, \
                     config.json records {expected}; distill it again with `quarry model distill \
                     --force`"
                ),
            ));
        }
        let (rows, dims, table, pieces) = read_table(&weights).map_err(|e| model_err(dir, e))?;
        let vocab = tokenizer.get_vocab_size(true);
        if rows < vocab {
            return Err(model_err(
                dir,
                format!("the table has {rows} rows for a vocabulary of {vocab} tokens"),
            ));
        }
        let spec = EmbedderSpec {
            provider: "static".into(),
            model: name.into(),
            revision,
            dimensions: dims,
            pooling: "mean".into(),
            normalized: config.normalize,
            max_tokens: MAX_TOKENS,
            query_prefix: String::new(),
            document_prefix: String::new(),
        };
        Ok(StaticEmbedder {
            fingerprint: spec.fingerprint(),
            spec,
            table,
            pieces,
            tokenizer,
            unk_id,
            dir: dir.to_path_buf(),
        })
    }

    /// The folder the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn vector(&self, ids: &[u32]) -> Vec<f32> {
        let dims = self.spec.dimensions;
        let mut v = vec![0f32; dims];
        let mut n = 0usize;
        for &id in ids.iter().filter(|&&id| Some(id) != self.unk_id) {
            if n == MAX_TOKENS {
                break;
            }
            let start = id as usize * dims;
            if let Some(row) = self.table.get(start..start + dims) {
                v.iter_mut().zip(row).for_each(|(a, b)| *a += b);
                n += 1;
            }
        }
        if n > 0 {
            v.iter_mut().for_each(|x| *x /= n as f32);
        }
        if self.spec.normalized {
            normalize(&mut v);
        }
        v
    }
}

/// The id of the tokenizer model's unknown token, when it has one.
fn unknown_token(tokenizer: &Tokenizer) -> Option<u32> {
    let model = serde_json::to_value(tokenizer.get_model()).ok()?;
    let unk = model.get("unk_token")?.as_str()?;
    tokenizer.token_to_id(unk)
}

/// `(rows, dimensions, values, pieces)` of the [`TENSOR`] and [`PIECES`] in a safetensors file.
fn read_table(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>, Vec<u32>), String> {
    let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .map_err(|e| format!("model.safetensors is not a safetensors file: {e}"))?;
    let t = tensors
        .get(TENSOR)
        .ok_or_else(|| format!("model.safetensors has no `{TENSOR}` tensor"))?;
    let (rows, dims) = t.dims2().map_err(|_| {
        format!(
            "`{TENSOR}` has shape {:?}; expected two dimensions",
            t.dims()
        )
    })?;
    if rows == 0 || dims == 0 {
        return Err(format!("`{TENSOR}` is empty ({rows} × {dims})"));
    }
    let values = t
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| format!("`{TENSOR}` cannot be read as f32: {e}"))?;
    if values.iter().any(|x| !x.is_finite()) {
        return Err(format!("`{TENSOR}` holds values that are not finite"));
    }
    let pieces = match tensors.get(PIECES) {
        None => Vec::new(),
        Some(p) => {
            let p = p
                .to_dtype(DType::U32)
                .and_then(|t| t.to_vec1::<u32>())
                .map_err(|e| format!("`{PIECES}` is not a list of counts: {e}"))?;
            if p.len() != rows {
                return Err(format!("`{PIECES}` has {} counts for {rows} rows", p.len()));
            }
            p
        }
    };
    Ok((rows, dims, values, pieces))
}

impl Embedder for StaticEmbedder {
    fn spec(&self) -> &EmbedderSpec {
        &self.spec
    }

    fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    fn embed(&self, texts: &[&str], _kind: InputKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), false)
            .map_err(|e| EmbedError::Input(format!("tokenizer failed: {e}")))?;
        Ok(encodings.iter().map(|e| self.vector(e.get_ids())).collect())
    }

    /// Counted with special tokens, as the transformer the table was distilled from counts them
    /// (an added word as the pieces it replaces, [`PIECES`]): a collection is chunked alike for
    /// either, so a re-index from one to the other keeps the chunks a direct ingest with the
    /// transformer would have made.
    fn count_tokens(&self, text: &str) -> Option<usize> {
        match self.tokenizer.encode_fast(text, true) {
            Ok(e) if self.pieces.is_empty() => Some(e.len()),
            Ok(e) => Some(
                e.get_ids()
                    .iter()
                    .map(|&id| self.pieces.get(id as usize).map_or(1, |&n| n as usize))
                    .sum(),
            ),
            Err(e) => {
                tracing::warn!("tokenizer failed to count tokens: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "static_model_tests.rs"]
mod tests;

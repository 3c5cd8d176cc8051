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
//! - `config.json`: what model2vec writes (not read), and `quarry.revision` when
//!   `quarry model distill` wrote the folder (checked at load);
//! - optionally [`TEACHER_TOKENIZER`]: the transformer's own tokenizer, when words were added to
//!   `tokenizer.json`. Tokens are counted with it, as the transformer counts them (special tokens
//!   included), so a collection is chunked the same for either model.
//!
//! Vectors are always L2-normalised (the engine normalises every vector anyway). A text without a
//! single known token (empty, or unknown characters only) embeds to the first unit vector rather
//! than to zeros, which have no direction: every vector is a valid vector to store and load.
//!
//! The spec's revision is the sha256 of the model's files ([`revision`]), so a re-distilled or
//! edited model is another embedder with its own fingerprint. Texts are truncated at
//! [`MAX_TOKENS`] tokens (model2vec's default `max_length`).

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

/// The transformer's tokenizer, beside a `tokenizer.json` that has added words.
pub const TEACHER_TOKENIZER: &str = "teacher_tokenizer.json";

/// A static token-embedding model loaded from a model2vec folder.
pub struct StaticEmbedder {
    spec: EmbedderSpec,
    fingerprint: Fingerprint,
    /// `vocabulary × dimensions`, row-major.
    table: Vec<f32>,
    tokenizer: Tokenizer,
    /// [`TEACHER_TOKENIZER`], which counts tokens when there is one (else `tokenizer` does).
    teacher: Option<Tokenizer>,
    unk_id: Option<u32>,
    dir: PathBuf,
}

#[derive(serde::Deserialize)]
struct StaticConfig {
    /// Written by `quarry model distill`.
    #[serde(default)]
    quarry: Option<Provenance>,
}

#[derive(serde::Deserialize)]
struct Provenance {
    revision: Option<String>,
}

/// A static model's revision: the sha256 of its files, `model.safetensors`, `tokenizer.json` and
/// [`TEACHER_TOKENIZER`] when there is one, each preceded by its length (the same table with
/// another vocabulary is another model).
pub(crate) fn revision(files: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update((f.len() as u64).to_le_bytes());
        h.update(f);
    }
    hex(&h.finalize())
}

/// A tokenizer read from `bytes`, without padding or truncation.
fn tokenizer_from(dir: &Path, name: &str, bytes: &[u8]) -> Result<Tokenizer, EmbedError> {
    let mut t = Tokenizer::from_bytes(bytes).map_err(|e| model_err(dir, format!("{name}: {e}")))?;
    t.with_padding(None);
    t.with_truncation(None)
        .map_err(|e| model_err(dir, format!("{name}: {e}")))?;
    Ok(t)
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
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StaticConfig { quarry: None },
            Err(e) => return Err(model_err(dir, format!("cannot read config.json: {e}"))),
        };
        let read = |name: &str| {
            fs::read(dir.join(name)).map_err(|e| model_err(dir, format!("cannot read {name}: {e}")))
        };
        let tokenizer_bytes = read("tokenizer.json")?;
        let tokenizer = tokenizer_from(dir, "tokenizer.json", &tokenizer_bytes)?;
        let teacher_bytes = match fs::read(dir.join(TEACHER_TOKENIZER)) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(model_err(
                    dir,
                    format!("cannot read {TEACHER_TOKENIZER}: {e}"),
                ));
            }
        };
        let teacher = teacher_bytes
            .as_deref()
            .map(|b| tokenizer_from(dir, TEACHER_TOKENIZER, b))
            .transpose()?;
        let unk_id = unknown_token(&tokenizer);

        let weights = read("model.safetensors")?;
        let mut files: Vec<&[u8]> = vec![&weights, &tokenizer_bytes];
        files.extend(teacher_bytes.as_deref());
        let revision = revision(&files);
        if let Some(expected) = config.quarry.and_then(|q| q.revision)
            && expected != revision
        {
            return Err(model_err(
                dir,
                format!(
                    "its files are damaged: their sha256 is {revision}, config.json records \
                     {expected}; distill it again with `quarry model distill --force`"
                ),
            ));
        }
        let (rows, dims, table) = read_table(&weights).map_err(|e| model_err(dir, e))?;
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
            normalized: true,
            max_tokens: MAX_TOKENS,
            query_prefix: String::new(),
            document_prefix: String::new(),
        };
        Ok(StaticEmbedder {
            fingerprint: spec.fingerprint(),
            spec,
            table,
            tokenizer,
            teacher,
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
        normalize(&mut v);
        if v.iter().all(|x| *x == 0.0) {
            // No known token (or rows that cancel out): the first unit vector, see the module doc.
            v[0] = 1.0;
        }
        v
    }
}

/// The id of the tokenizer model's unknown token, when it has one (`unk_token` of WordPiece and
/// BPE models, `unk_id` of Unigram models).
pub(crate) fn unknown_token(tokenizer: &Tokenizer) -> Option<u32> {
    let model = serde_json::to_value(tokenizer.get_model()).ok()?;
    if let Some(id) = model.get("unk_id").and_then(serde_json::Value::as_u64) {
        return u32::try_from(id).ok();
    }
    let unk = model.get("unk_token")?.as_str()?;
    tokenizer.token_to_id(unk)
}

/// `(rows, dimensions, values)` of the [`TENSOR`] in a safetensors file.
fn read_table(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), String> {
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
    Ok((rows, dims, values))
}

impl Embedder for StaticEmbedder {
    fn spec(&self) -> &EmbedderSpec {
        &self.spec
    }

    fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(self.embed_counted(texts, kind)?.0)
    }

    /// The tokens are the table's own (the rows looked up, up to [`MAX_TOKENS`] a text), not the
    /// teacher's count of [`Embedder::count_tokens`]: what the call cost.
    fn embed_counted(
        &self,
        texts: &[&str],
        _kind: InputKind,
    ) -> Result<(Vec<Vec<f32>>, Option<usize>), EmbedError> {
        if texts.is_empty() {
            return Ok((Vec::new(), Some(0)));
        }
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), false)
            .map_err(|e| EmbedError::Input(format!("tokenizer failed: {e}")))?;
        let tokens = encodings
            .iter()
            .map(|e| e.get_ids().len().min(MAX_TOKENS))
            .sum();
        let vectors = encodings.iter().map(|e| self.vector(e.get_ids())).collect();
        Ok((vectors, Some(tokens)))
    }

    /// Counted with special tokens, as the transformer the table was distilled from counts them
    /// (with [`TEACHER_TOKENIZER`] when words were added): a collection is chunked alike for
    /// either, so a re-index from one to the other keeps the chunks a direct ingest with the
    /// transformer would have made.
    fn count_tokens(&self, text: &str) -> Option<usize> {
        let counter = self.teacher.as_ref().unwrap_or(&self.tokenizer);
        match counter.encode_fast(text, true) {
            Ok(e) => Some(e.len()),
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

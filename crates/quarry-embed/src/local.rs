//! The local embedding model: a BERT-family sentence-transformers model (all-MiniLM-L6-v2 by
//! default) run on the CPU with candle.
//!
//! It computes what sentence-transformers computes: the text is tokenized with the model's
//! `tokenizer.json` (special tokens added) and truncated to `max_seq_length` tokens, specials
//! included; the token vectors of the last layer are averaged over the text's tokens (mean
//! pooling) and the average is L2-normalised. Texts are embedded in batches of similar length,
//! packed row after row without padding (candle's `BertModel`, the reference, pads to the
//! longest text of a batch and masks the padding out); each text attends to its own tokens only,
//! so a text's vector does not depend on its batch.

use std::fs;
use std::path::{Path, PathBuf};

use crate::bert::Bert;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use quarry_core::embed::normalize;
use quarry_core::{EmbedError, Embedder, EmbedderSpec, Fingerprint, InputKind};
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

use crate::fetch::hex;

/// Texts per forward pass.
pub const BATCH_SIZE: usize = 32;

/// Tokens per forward pass at most, counted as the batch's texts times its longest (what
/// candle's `BertModel`, the reference, runs on; quarry's encoder packs the texts and runs on
/// their tokens alone): a batch of long texts holds fewer texts. The matrix products of 2048 rows
/// already run at full speed.
pub const BATCH_TOKENS: usize = 2048;

/// Truncation length when the folder has no `sentence_bert_config.json`.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// The network that turns token ids into hidden states.
enum Encoder {
    Quarry(Box<Bert>),
    /// candle-transformers' own, as a baseline ([`LocalEmbedder::load_candle_reference`])
    Candle(Box<BertModel>),
}

/// A BERT sentence-transformers model loaded from a Hugging Face folder.
pub struct LocalEmbedder {
    spec: EmbedderSpec,
    fingerprint: Fingerprint,
    model: Encoder,
    /// Truncates at `spec.max_tokens`, specials included; never pads.
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation, for [`Embedder::count_tokens`].
    counter: Tokenizer,
    pad_id: u32,
    dir: PathBuf,
}

// The engine shares one embedder across threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LocalEmbedder>();
};

#[derive(serde::Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(serde::Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default = "yes")]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

fn yes() -> bool {
    true
}

fn fix_hint(dir: &Path) -> String {
    format!(
        "run `quarry model pull` to download {}, or point embedders.NAME.model_dir at a folder \
         with config.json, tokenizer.json and model.safetensors of a BERT-family \
         sentence-transformers model (the current folder is {})",
        crate::fetch::DEFAULT_MODEL,
        dir.display()
    )
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, EmbedError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            EmbedError::Model(format!(
                "{} is not valid: {e}; {}",
                path.display(),
                fix_hint(path.parent().unwrap_or(path))
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EmbedError::Model(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn inference_err(e: candle_core::Error) -> EmbedError {
    EmbedError::Provider(format!("local model inference failed: {e}"))
}

impl LocalEmbedder {
    /// Loads the model in `dir` (`config.json`, `tokenizer.json`, `model.safetensors`, and
    /// optionally `sentence_bert_config.json` and `1_Pooling/config.json`); `name` becomes the
    /// spec's model name. The weights are read once and hashed for the spec's revision.
    pub fn load(dir: &Path, name: &str) -> Result<Self, EmbedError> {
        Self::load_with(dir, name, false)
    }

    /// The same model run by candle-transformers' `BertModel` instead of quarry's encoder
    /// ([`crate::bert`]): the baseline the embed benchmark times in the same run, and the
    /// reference a test compares the encoder with. Same spec and fingerprint; not for ingest.
    pub fn load_candle_reference(dir: &Path, name: &str) -> Result<Self, EmbedError> {
        Self::load_with(dir, name, true)
    }

    fn load_with(dir: &Path, name: &str, candle: bool) -> Result<Self, EmbedError> {
        let missing: Vec<&str> = crate::fetch::REQUIRED_FILES
            .iter()
            .copied()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            let what = if dir.is_dir() {
                format!(
                    "model folder {} lacks {}",
                    dir.display(),
                    missing.join(", ")
                )
            } else {
                format!("model folder {} does not exist", dir.display())
            };
            return Err(EmbedError::Model(format!("{what}: {}", fix_hint(dir))));
        }

        let config_path = dir.join("config.json");
        let config_json: serde_json::Value = read_json(&config_path)?.unwrap_or_default();
        if let Some(kind) = config_json.get("model_type").and_then(|v| v.as_str())
            && !matches!(kind, "bert")
        {
            return Err(EmbedError::Model(format!(
                "{} describes a {kind:?} model; the local embedder runs BERT models only: {}",
                config_path.display(),
                fix_hint(dir)
            )));
        }
        let config: Config = serde_json::from_value(config_json).map_err(|e| {
            EmbedError::Model(format!(
                "{} is not a BERT config: {e}; {}",
                config_path.display(),
                fix_hint(dir)
            ))
        })?;

        if let Some(pooling) = read_json::<PoolingConfig>(&dir.join("1_Pooling/config.json"))?
            && (!pooling.pooling_mode_mean_tokens
                || pooling.pooling_mode_cls_token
                || pooling.pooling_mode_max_tokens
                || pooling.pooling_mode_mean_sqrt_len_tokens)
        {
            return Err(EmbedError::Model(format!(
                "{} asks for a pooling other than mean pooling, which the local embedder does \
                 not implement: use a mean-pooling sentence-transformers model",
                dir.join("1_Pooling/config.json").display()
            )));
        }

        let st = read_json::<SentenceBertConfig>(&dir.join("sentence_bert_config.json"))?;
        let max_tokens = st
            .and_then(|s| s.max_seq_length)
            .unwrap_or(DEFAULT_MAX_TOKENS)
            .min(config.max_position_embeddings);
        if max_tokens < 4 {
            return Err(EmbedError::Model(format!(
                "{}: a maximum sequence length of {max_tokens} tokens leaves no room for text",
                dir.display()
            )));
        }

        let tokenizer_path = dir.join("tokenizer.json");
        let mut counter = Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            EmbedError::Model(format!(
                "{} is not a valid tokenizer: {e}; {}",
                tokenizer_path.display(),
                fix_hint(dir)
            ))
        })?;
        // tokenizer.json may carry the exporter's padding and truncation (all-MiniLM-L6-v2's pads
        // and truncates at 128): we batch (packed, or padded for the reference) and truncate at
        // max_tokens.
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(|e| EmbedError::Model(format!("tokenizer: {e}")))?;
        let mut tokenizer = counter.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| EmbedError::Model(format!("tokenizer truncation: {e}")))?;
        let pad_id = tokenizer
            .get_vocab(true)
            .get("[PAD]")
            .copied()
            .unwrap_or(config.pad_token_id as u32);

        let weights_path = dir.join("model.safetensors");
        let weights = fs::read(&weights_path).map_err(|e| {
            EmbedError::Model(format!("cannot read {}: {e}", weights_path.display()))
        })?;
        let revision = hex(&Sha256::digest(&weights));
        let device = Device::Cpu;
        let model = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .and_then(|vb| {
                crate::bert::check(&config)?;
                Ok(if candle {
                    Encoder::Candle(Box::new(BertModel::load(vb, &config)?))
                } else {
                    Encoder::Quarry(Box::new(Bert::load(vb, &config)?))
                })
            })
            .map_err(|e| {
                EmbedError::Model(format!(
                    "{} is corrupt or does not hold the weights of this BERT config: {e}; {}",
                    weights_path.display(),
                    fix_hint(dir)
                ))
            })?;

        let spec = EmbedderSpec {
            provider: "local".into(),
            model: name.into(),
            revision,
            dimensions: config.hidden_size,
            pooling: "mean".into(),
            normalized: true,
            max_tokens,
            query_prefix: String::new(),
            document_prefix: String::new(),
        };
        Ok(LocalEmbedder {
            fingerprint: spec.fingerprint(),
            spec,
            model,
            tokenizer,
            counter,
            pad_id,
            dir: dir.to_path_buf(),
        })
    }

    /// The folder the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Token ids (truncated) of every text.
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| EmbedError::Input(format!("tokenizer failed: {e}")))?;
        Ok(encodings
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }

    /// The tokenizer without truncation (special tokens are added only when asked).
    pub fn untruncated_tokenizer(&self) -> &Tokenizer {
        &self.counter
    }

    /// Pooled, normalised vectors of one batch of token id lists.
    fn forward(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut rows = self.pooled(batch)?;
        for row in &mut rows {
            normalize(row);
        }
        Ok(rows)
    }

    /// Mean-pooled vectors of one batch of token id lists (specials included as given), not
    /// normalised: what [`crate::distill`] takes from the model for each vocabulary token.
    pub(crate) fn pooled(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let dims = self.spec.dimensions;
        let len = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        if len == 0 {
            return Ok(vec![vec![0.0; dims]; batch.len()]);
        }
        let lens: Vec<usize> = batch.iter().map(|ids| ids.len()).collect();
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            match &self.model {
                Encoder::Quarry(bert) => {
                    // packed: text i's rows follow text i − 1's
                    let ids: Vec<u32> = batch.concat();
                    let states = bert.forward(&ids, &lens)?;
                    if states.len() != ids.len() * dims {
                        candle_core::bail!(
                            "the encoder gave {} values for {} tokens of {dims} dimensions",
                            states.len(),
                            ids.len()
                        );
                    }
                    let starts = lens.iter().scan(0, |row, &n| {
                        *row += n;
                        Some(*row - n)
                    });
                    Ok(mean_rows(&states, dims, starts.zip(lens.iter().copied())))
                }
                Encoder::Candle(bert) => {
                    // padded to the longest text, padding masked out
                    let (mut ids, mut mask) = (Vec::new(), Vec::new());
                    for row in batch {
                        ids.extend_from_slice(row);
                        ids.extend(std::iter::repeat_n(self.pad_id, len - row.len()));
                        mask.extend(std::iter::repeat_n(1f32, row.len()));
                        mask.extend(std::iter::repeat_n(0f32, len - row.len()));
                    }
                    let (device, shape) = (&Device::Cpu, (batch.len(), len));
                    let ids = Tensor::from_vec(ids, shape, device)?;
                    let mask = Tensor::from_vec(mask, shape, device)?;
                    let hidden = bert.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
                    let states: Vec<f32> = hidden.flatten_all()?.to_vec1()?;
                    let spans = lens.iter().enumerate().map(|(i, &n)| (i * len, n));
                    Ok(mean_rows(&states, hidden.dim(2)?, spans))
                }
            }
        };
        run().map_err(inference_err)
    }
}

/// The mean of each text's rows of `width` values in `states`: `(first row, rows)` per text (a
/// text of no rows gets zeros).
fn mean_rows(
    states: &[f32],
    width: usize,
    spans: impl Iterator<Item = (usize, usize)>,
) -> Vec<Vec<f32>> {
    spans
        .map(|(first, n)| {
            let mut sum = vec![0f32; width];
            let rows = states
                .get(first * width..(first + n) * width)
                .unwrap_or(&[]);
            for row in rows.chunks_exact(width.max(1)) {
                sum.iter_mut().zip(row).for_each(|(s, &x)| *s += x);
            }
            let n = n.max(1) as f32;
            sum.iter_mut().for_each(|s| *s /= n);
            sum
        })
        .collect()
}

/// Splits `order` (indices sorted by ascending length) into batches of at most [`BATCH_SIZE`]
/// texts and [`BATCH_TOKENS`] tokens counted padded, as texts times the longest (at least one
/// text each).
fn batches(order: &[usize], len: impl Fn(usize) -> usize) -> Vec<&[usize]> {
    let mut out = Vec::new();
    let mut start = 0;
    for end in 1..=order.len() {
        // The batch [start, end) pads to the length of its last (longest) text.
        let n = end - start;
        let padded = n * len(order[end - 1]).max(1);
        if n > 1 && (n > BATCH_SIZE || padded > BATCH_TOKENS) {
            out.push(&order[start..end - 1]);
            start = end - 1;
        }
    }
    if start < order.len() {
        out.push(&order[start..]);
    }
    out
}

impl Embedder for LocalEmbedder {
    fn spec(&self) -> &EmbedderSpec {
        &self.spec
    }

    fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(self.embed_counted(texts, kind)?.0)
    }

    /// The tokens are those of the truncated inputs the model ran on (specials and any prefix
    /// included).
    fn embed_counted(
        &self,
        texts: &[&str],
        kind: InputKind,
    ) -> Result<(Vec<Vec<f32>>, Option<usize>), EmbedError> {
        if texts.is_empty() {
            return Ok((Vec::new(), Some(0)));
        }
        let prefixed: Vec<_> = texts.iter().map(|t| self.spec.prefixed(t, kind)).collect();
        let inputs: Vec<&str> = prefixed.iter().map(|t| t.as_ref()).collect();
        let ids = self.encode(&inputs)?;
        // Batch texts of similar length: the reference pads little, and a batch's texts take
        // similar time in the attention.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let batches = batches(&order, |i| ids[i].len());
        // One batch at a time: each product and step of a pass already takes every core (faer
        // and the fused steps on rayon's threads), and the encoder runs one pass at a time.
        let mut out = vec![Vec::new(); texts.len()];
        for batch in batches {
            let rows: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
            for (&i, row) in batch.iter().zip(self.forward(&rows)?) {
                out[i] = row;
            }
        }
        Ok((out, Some(ids.iter().map(Vec::len).sum())))
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        match self.counter.encode_fast(text, true) {
            Ok(encoding) => Some(encoding.len()),
            Err(e) => {
                tracing::warn!("tokenizer failed to count tokens: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: EmbedError) -> String {
        match err {
            EmbedError::Model(msg) => msg,
            other => panic!("expected EmbedError::Model, got {other:?}"),
        }
    }

    #[test]
    fn mean_rows_averages_each_texts_rows_padded_or_packed() {
        // 3 texts of 3 rows of 2: 2 tokens, 3 tokens, none; padding rows are NaN
        let nan = f32::NAN;
        let states = [
            1., 2., 3., 6., nan, nan, //
            1., 1., 2., 2., 6., 9., //
            nan, nan, nan, nan, nan, nan,
        ];
        let padded = [(0, 2), (3, 3), (6, 0)];
        let means = mean_rows(&states, 2, padded.into_iter());
        assert_eq!(means, vec![vec![2., 4.], vec![3., 4.], vec![0., 0.]]);
        // packed: the same texts row after row
        let packed = [1., 2., 3., 6., 1., 1., 2., 2., 6., 9.];
        let spans = [(0, 2), (2, 3), (5, 0)];
        assert_eq!(mean_rows(&packed, 2, spans.into_iter()), means);
        // rows beyond the states, or of no width, give zeros rather than a panic
        assert_eq!(
            mean_rows(&states[..6], 2, [(0, 2), (3, 3)].into_iter()),
            vec![vec![2., 4.], vec![0., 0.]]
        );
        assert_eq!(
            mean_rows(&[], 0, [(0, 1)].into_iter()),
            vec![Vec::<f32>::new()]
        );
    }

    #[test]
    fn batches_bound_texts_and_padded_tokens() {
        let lens = [1usize, 2, 3, 3, 100, 256, 256, 256];
        let order: Vec<usize> = (0..lens.len()).collect();
        let split = batches(&order, |i| lens[i]);
        // Every text exactly once, in order.
        assert_eq!(split.concat(), order);
        for b in &split {
            let longest = b.iter().map(|&i| lens[i]).max().unwrap();
            assert!(b.len() == 1 || (b.len() <= BATCH_SIZE && b.len() * longest <= BATCH_TOKENS));
        }
        let many = [10usize; 100];
        let order: Vec<usize> = (0..100).collect();
        let split = batches(&order, |i| many[i]);
        assert_eq!(split.len(), 4);
        assert_eq!(split[0].len(), BATCH_SIZE);
        let long = [256usize; 20];
        let split = batches(&order[..20], |i| long[i]);
        let sizes: Vec<usize> = split.iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [8, 8, 4]);
        assert!(batches(&[], |_| 0).is_empty());
        // Empty token lists still form a batch.
        assert_eq!(batches(&[0, 1], |_| 0).len(), 1);
    }

    #[test]
    fn missing_folder_and_files_say_how_to_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let msg = message(
            LocalEmbedder::load(&tmp.path().join("nope"), "m")
                .err()
                .unwrap(),
        );
        assert!(msg.contains("does not exist"), "{msg}");
        assert!(msg.contains("quarry model pull"), "{msg}");
        assert!(msg.contains("model_dir"), "{msg}");

        fs::write(tmp.path().join("config.json"), "{}").unwrap();
        let msg = message(LocalEmbedder::load(tmp.path(), "m").err().unwrap());
        assert!(
            msg.contains("lacks tokenizer.json, model.safetensors"),
            "{msg}"
        );
    }

    #[test]
    fn corrupt_files_are_model_errors() {
        let tmp = tempfile::tempdir().unwrap();
        for f in crate::fetch::REQUIRED_FILES {
            fs::write(tmp.path().join(f), "garbage").unwrap();
        }
        let msg = message(LocalEmbedder::load(tmp.path(), "m").err().unwrap());
        assert!(msg.contains("config.json is not valid"), "{msg}");

        // A plausible config, a garbage tokenizer.
        let config = r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "max_position_embeddings": 32, "type_vocab_size": 2,
            "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0}"#;
        fs::write(tmp.path().join("config.json"), config).unwrap();
        let msg = message(LocalEmbedder::load(tmp.path(), "m").err().unwrap());
        assert!(
            msg.contains("tokenizer.json is not a valid tokenizer"),
            "{msg}"
        );

        // A non-BERT config.
        fs::write(tmp.path().join("config.json"), r#"{"model_type": "t5"}"#).unwrap();
        let msg = message(LocalEmbedder::load(tmp.path(), "m").err().unwrap());
        assert!(msg.contains("BERT models only"), "{msg}");
    }

    #[test]
    fn corrupt_weights_are_model_errors() {
        // Needs a real tokenizer: use the cached model's when present, skip otherwise.
        let real = crate::fetch::model_cache_dir().join(crate::fetch::DEFAULT_MODEL);
        if !real.join("tokenizer.json").is_file() {
            eprintln!("model not cached at {}: skipped", real.display());
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        for f in ["config.json", "tokenizer.json"] {
            fs::copy(real.join(f), tmp.path().join(f)).unwrap();
        }
        fs::write(tmp.path().join("model.safetensors"), b"not safetensors").unwrap();
        let msg = message(LocalEmbedder::load(tmp.path(), "m").err().unwrap());
        assert!(msg.contains("model.safetensors is corrupt"), "{msg}");
        assert!(msg.contains("quarry model pull"), "{msg}");
    }
}

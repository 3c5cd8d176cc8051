//! Distilling a static model ([`crate::static_model`]) from the local transformer, model2vec's
//! recipe (Tulkens & van Dongen, 2024), offline and deterministic:
//!
//! 1. every vocabulary token but the special and `[unusedN]` ones is run through the transformer
//!    alone, as `[CLS] token [SEP]`, and its last layer is mean-pooled (specials included, not
//!    normalised);
//! 2. the vectors are centred and projected on their first `dims` principal components (the
//!    eigenvectors of their covariance, by nalgebra's symmetric eigen-solver; each turned so that
//!    its largest component is positive, so the result does not depend on the solver's signs);
//! 3. each row is weighted by `sif / (sif + p)`, where `p` is the token's probability under
//!    Zipf's law by its rank in the vocabulary (WordPiece vocabularies list words roughly by
//!    frequency), which damps frequent tokens (SIF, Arora et al., 2017).
//!
//! The folder is written in model2vec's layout beside the destination and renamed into place in
//! one step, so a reader never sees half a model. Its `config.json` records the teacher and the
//! revision (the sha256 of `model.safetensors` and `tokenizer.json`), which
//! [`crate::StaticEmbedder::load`] checks.
//!
//! Words can be added to the vocabulary (model2vec's vocabulary option): a word the tokenizer cuts
//! into pieces (`glucocorticoid` → `g ##lu ##co ##cor ##tic ##oid`) gets a row of its own, the
//! teacher's vector of the whole word, and the tokenizer matches it whole from then on. Pieces
//! averaged by a static table lose the word's meaning; a domain's vocabulary (from its corpus,
//! [`count_split_words`]) keeps it. The same teacher
//! and options give the same bytes on the same machine: batches are fixed, and the only parallel
//! work (candle's matrix products) does not split the sums it computes.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use nalgebra::DMatrix;
use quarry_core::{EmbedError, Embedder};

use crate::LocalEmbedder;
use crate::distill_fit::Design;
pub use crate::distill_fit::FitOptions;
use crate::static_model::{TEACHER_TOKENIZER, TENSOR};

/// The built-in static model's name (`embedder = "static"`): a folder of the model cache.
pub const DEFAULT_STATIC_MODEL: &str = "static-all-MiniLM-L6-v2";

/// How to distill.
#[derive(Debug, Clone, Copy)]
pub struct DistillOptions {
    /// Dimensions kept by the PCA (at most the teacher's).
    pub dims: usize,
    /// The SIF coefficient; 0 weighs every token alike.
    pub sif: f64,
    /// Tokens per forward pass.
    pub batch: usize,
    /// Only the first this many tokens (in vocabulary order) get rows; the others embed to
    /// nothing. For tests and quick trials.
    pub limit: Option<usize>,
    /// How the table is fitted to the teacher's vectors of sample texts, when there are any.
    pub fit: FitOptions,
}

impl DistillOptions {
    /// Why these options cannot distill a teacher of `teacher_dims` dimensions, if they cannot.
    pub fn check(&self, teacher_dims: usize) -> Result<(), String> {
        if self.dims == 0 || self.dims > teacher_dims {
            return Err(format!(
                "--dims {}: use 1 to {teacher_dims}, the teacher's dimensions",
                self.dims
            ));
        }
        if !(self.fit.lambda.is_finite() && self.fit.lambda > 0.0) {
            return Err(format!(
                "--fit-lambda {}: use a positive number (1e-3 by default)",
                self.fit.lambda
            ));
        }
        if !(0.0..1.0).contains(&self.sif) {
            return Err(format!(
                "--sif {}: use 0 (no weights) up to, not including, 1",
                self.sif
            ));
        }
        Ok(())
    }
}

impl Default for DistillOptions {
    /// model2vec's defaults: 256 dimensions, SIF 1e-4.
    fn default() -> Self {
        DistillOptions {
            dims: 256,
            sif: 1e-4,
            batch: 256,
            limit: None,
            fit: FitOptions::default(),
        }
    }
}

/// What [`distill`] made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Distilled {
    pub dir: PathBuf,
    /// Tokens with a row of their own (the vocabulary less specials and unused tokens).
    pub tokens: usize,
    /// Words added to the vocabulary, each with a row of its own.
    pub words: usize,
    pub dimensions: usize,
    /// Share of the teacher's token-vector variance the kept components explain.
    pub explained_variance: f64,
    /// Sample texts the table was fitted to (0: not fitted).
    pub fitted_samples: usize,
    /// The static embedder's revision: the sha256 of `model.safetensors` and `tokenizer.json`.
    pub revision: String,
    pub seconds: f64,
}

fn err(what: impl std::fmt::Display) -> EmbedError {
    EmbedError::Model(format!("distill: {what}"))
}

/// Distills `teacher` into the folder `out`, which must not exist unless `force`: then a model
/// there is replaced once the new one is complete (and kept if anything fails).
/// With `samples` (texts), the table is then fitted to the teacher's vectors of them
/// ([`crate::distill_fit`]). `progress(done, total)` is called after each batch of tokens and of
/// samples.
pub fn distill(
    teacher: &LocalEmbedder,
    options: DistillOptions,
    words: &[String],
    samples: &[String],
    out: &Path,
    force: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Distilled, EmbedError> {
    let started = Instant::now();
    let teacher_dims = teacher.spec().dimensions;
    options.check(teacher_dims).map_err(err)?;
    if out.exists() && !force {
        return Err(exists(out));
    }
    let tokenizer = teacher.untruncated_tokenizer();
    let (prefix, suffix) = specials(tokenizer)?;
    let vocab = tokenizer.get_vocab_size(true);
    let mut ids = kept_tokens(tokenizer);
    ids.truncate(options.limit.unwrap_or(usize::MAX));
    if ids.len() <= options.dims {
        return Err(err(format!(
            "{} tokens cannot give {} principal components",
            ids.len(),
            options.dims
        )));
    }

    let (tokenizer_json, teacher_json, words) = extended_tokenizer(teacher, words)?;

    // 1. The teacher's vector of each token, then of each added word (all its pieces at once).
    let dims = teacher_dims;
    let mut inputs: Vec<Vec<u32>> = ids
        .iter()
        .map(|&id| [prefix.as_slice(), &[id], suffix.as_slice()].concat())
        .collect();
    for w in &words {
        let encoded = tokenizer
            .encode_fast(w.as_str(), true)
            .map_err(|e| err(format!("tokenizer: {e}")))?;
        inputs.push(encoded.get_ids().to_vec());
    }
    let total = inputs.len();
    let work = total + samples.len();
    let mut x = Vec::with_capacity(total * dims);
    for (b, chunk) in inputs.chunks(options.batch.max(1)).enumerate() {
        let rows: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
        for v in teacher.pooled(&rows)? {
            x.extend(v);
        }
        progress((b * options.batch + chunk.len()).min(total), work);
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(err("the teacher produced values that are not finite"));
    }

    // 2. PCA.
    let (projected, explained_variance) = pca(&x, total, dims, options.dims);
    debug_assert_eq!(projected.len(), total * options.dims);

    // 3. SIF weights by Zipf rank (added words after the vocabulary, most frequent first); rows
    // of tokens without one stay zero.
    let harmonic: f64 = (0..total).map(|r| 1.0 / (r as f64 + 2.0)).sum();
    let rows = vocab + words.len();
    let mut table = vec![0f32; rows * options.dims];
    let added = (vocab as u32..).take(words.len());
    for (rank, id) in ids.iter().copied().chain(added).enumerate() {
        let p = 1.0 / (rank as f64 + 2.0) / harmonic;
        let w = if options.sif > 0.0 {
            options.sif / (options.sif + p)
        } else {
            1.0
        };
        let row = &projected[rank * options.dims..(rank + 1) * options.dims];
        let start = id as usize * options.dims;
        for (t, v) in table[start..start + options.dims].iter_mut().zip(row) {
            *t = (v * w) as f32;
        }
    }

    let (table, fitted_samples) = if samples.is_empty() {
        (table, 0)
    } else {
        fit_table(
            teacher,
            options,
            &table,
            &tokenizer_json,
            samples,
            &|done| progress(total + done, work),
        )?
    };

    let table = Table {
        values: table,
        fitted_samples,
        rows,
        tokenizer_json,
        teacher_json: (!words.is_empty()).then_some(teacher_json),
        words: words.len(),
        explained_variance,
    };
    let revision = write(teacher, options, out, force, table)?;
    Ok(Distilled {
        dir: out.to_path_buf(),
        tokens: ids.len(),
        words: words.len(),
        dimensions: options.dims,
        explained_variance,
        fitted_samples,
        revision,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Samples embedded by the teacher per call.
const FIT_BATCH: usize = 32;

/// [`crate::distill_fit::fit`] of `table` to the teacher's vectors of `samples`, each tokenised
/// as the static model will (its tokenizer, unknown tokens dropped) and cut where the teacher
/// cuts it. `progress(samples embedded)`. Returns the table and how many samples had a token the
/// model knows (the others cannot move a row); none is an error.
fn fit_table(
    teacher: &LocalEmbedder,
    options: DistillOptions,
    table: &[f32],
    tokenizer_json: &str,
    samples: &[String],
    progress: &dyn Fn(usize),
) -> Result<(Vec<f32>, usize), EmbedError> {
    let tokenizer: tokenizers::Tokenizer = tokenizer_json
        .parse()
        .map_err(|e| err(format!("tokenizer: {e}")))?;
    let unknown = crate::static_model::unknown_token(&tokenizer);
    let spec = teacher.spec();
    let cut = spec.max_tokens.saturating_sub(2).max(1);
    let mut lists = Vec::with_capacity(samples.len());
    let mut targets = Vec::with_capacity(samples.len());
    for (b, chunk) in samples.chunks(FIT_BATCH).enumerate() {
        for text in chunk {
            let e = tokenizer
                .encode_fast(text.as_str(), false)
                .map_err(|e| err(format!("tokenizer: {e}")))?;
            let ids: Vec<u32> = e
                .get_ids()
                .iter()
                .copied()
                .filter(|&id| Some(id) != unknown)
                .take(cut)
                .collect();
            lists.push(ids);
        }
        let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
        targets.extend(teacher.embed(&texts, quarry_core::InputKind::Document)?);
        progress(b * FIT_BATCH + chunk.len());
    }
    let used = lists.iter().filter(|l| !l.is_empty()).count();
    if used == 0 {
        return Err(err(
            "no sample text holds a token the model knows; give --fit texts in the model's language",
        ));
    }
    let fitted = crate::distill_fit::fit(
        table,
        options.dims,
        &Design::new(&lists),
        &targets,
        spec.dimensions,
        options.dims,
        options.fit,
    );
    if fitted.iter().any(|v| !v.is_finite()) {
        return Err(err("the fit produced values that are not finite"));
    }
    Ok((fitted, used))
}

/// The ids the tokenizer puts before and after a text (`[CLS]`, `[SEP]` for BERT).
fn specials(tokenizer: &tokenizers::Tokenizer) -> Result<(Vec<u32>, Vec<u32>), EmbedError> {
    let empty = tokenizer
        .encode_fast("", true)
        .map_err(|e| err(format!("tokenizer: {e}")))?;
    let ids = empty.get_ids();
    match ids {
        [first, rest @ ..] => Ok((vec![*first], rest.to_vec())),
        [] => Ok((Vec::new(), Vec::new())),
    }
}

/// Vocabulary ids in order, less special tokens and BERT's `[unusedN]` placeholders.
fn kept_tokens(tokenizer: &tokenizers::Tokenizer) -> Vec<u32> {
    let special: std::collections::HashSet<u32> = tokenizer
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(_, t)| t.special)
        .map(|(id, _)| id)
        .collect();
    let mut vocab: Vec<(u32, String)> = tokenizer
        .get_vocab(true)
        .into_iter()
        .map(|(t, id)| (id, t))
        .collect();
    vocab.sort_unstable();
    vocab
        .into_iter()
        .filter(|(id, t)| {
            let unused = t.starts_with("[unused") && t.ends_with(']');
            !special.contains(id) && !unused
        })
        .map(|(id, _)| id)
        .collect()
}

/// Centres the `n × d` rows of `x` and projects them on their first `k` principal components:
/// the `n × k` result and the share of the variance kept.
fn pca(x: &[f32], n: usize, d: usize, k: usize) -> (Vec<f64>, f64) {
    let mut m = DMatrix::<f64>::from_fn(n, d, |i, j| f64::from(x[i * d + j]));
    for j in 0..d {
        let mean = m.column(j).mean();
        m.column_mut(j).add_scalar_mut(-mean);
    }
    let cov = m.tr_mul(&m) / (n.max(2) - 1) as f64;
    let (basis, explained) = crate::distill_fit::principal_basis(cov, k);
    let projected = m * basis;
    // Row-major, as the table is laid out.
    let rows: Vec<f64> = projected.transpose().iter().copied().collect();
    (rows, explained)
}

/// What [`write`] writes.
struct Table {
    /// `rows × dims`, row-major.
    values: Vec<f32>,
    rows: usize,
    tokenizer_json: String,
    /// The teacher's tokenizer, written as [`TEACHER_TOKENIZER`] when words were added.
    teacher_json: Option<String>,
    words: usize,
    explained_variance: f64,
    fitted_samples: usize,
}

/// Words that `tokenizer` cuts into several pieces, as it normalises them (lower-cased for an
/// uncased model), counted over `text`. Words with an unknown piece are left out.
pub fn count_split_words(
    tokenizer: &tokenizers::Tokenizer,
    text: &str,
    counts: &mut HashMap<String, u64>,
) -> Result<(), EmbedError> {
    let e = tokenizer
        .encode_fast(text, false)
        .map_err(|e| err(format!("tokenizer: {e}")))?;
    // A word is a piece followed by its `##` continuations (WordPiece's marks: the fast encoding
    // has neither word ids nor token strings).
    let tokens: Vec<String> = e
        .get_ids()
        .iter()
        .map(|&id| tokenizer.id_to_token(id).unwrap_or_default())
        .collect();
    let mut i = 0;
    while i < tokens.len() {
        let mut j = i + 1;
        while j < tokens.len() && tokens[j].starts_with("##") {
            j += 1;
        }
        let pieces = &tokens[i..j];
        if pieces.len() > 1
            && pieces
                .iter()
                .all(|p| !(p.starts_with('[') && p.ends_with(']')))
        {
            let mut word = pieces[0].clone();
            for p in &pieces[1..] {
                word.push_str(p.strip_prefix("##").unwrap_or(p));
            }
            *counts.entry(word).or_default() += 1;
        }
        i = j;
    }
    Ok(())
}

/// The teacher's `tokenizer.json` with `words` added to its WordPiece vocabulary (ids after the
/// vocabulary's, in the order given; words it has already, or cannot hold, are dropped), the
/// teacher's own, and the words added. Padding and truncation are cleared in both.
fn extended_tokenizer(
    teacher: &LocalEmbedder,
    words: &[String],
) -> Result<(String, String, Vec<String>), EmbedError> {
    let path = teacher.dir().join("tokenizer.json");
    let text = fs::read_to_string(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let mut json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("{}: {e}", path.display())))?;
    json["padding"] = serde_json::Value::Null;
    json["truncation"] = serde_json::Value::Null;
    let teacher_json = serde_json::to_string(&json).map_err(|e| err(e.to_string()))?;
    let mut added = Vec::new();
    if !words.is_empty() {
        let model = &mut json["model"];
        if model["type"] != "WordPiece" {
            return Err(err(
                "adding words needs a WordPiece tokenizer (BERT's); this teacher's is another",
            ));
        }
        let vocab = model["vocab"]
            .as_object_mut()
            .ok_or_else(|| err("tokenizer.json has no vocabulary"))?;
        let mut next = teacher.untruncated_tokenizer().get_vocab_size(true) as u64;
        for w in words {
            let fits = !w.is_empty() && !w.starts_with("##") && !w.chars().any(char::is_whitespace);
            if fits && !vocab.contains_key(w) {
                vocab.insert(w.clone(), serde_json::json!(next));
                next += 1;
                added.push(w.clone());
            }
        }
    }
    let text = serde_json::to_string(&json).map_err(|e| err(e.to_string()))?;
    Ok((text, teacher_json, added))
}

/// The error of a model that exists already.
fn exists(out: &Path) -> EmbedError {
    err(format!(
        "a static model exists already in {}; use it, or pass --force to build it again",
        out.display()
    ))
}

/// Writes `bytes` to `path` and syncs them.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = fs::File::create(path)?;
    std::io::Write::write_all(&mut f, bytes)?;
    f.sync_all()
}

/// Writes the model folder beside `out` and renames it into place (a model there moved aside
/// first when `force`, and removed once the new one is in place); returns its revision.
fn write(
    teacher: &LocalEmbedder,
    options: DistillOptions,
    out: &Path,
    force: bool,
    table: Table,
) -> Result<String, EmbedError> {
    let io = |what: &str, e: std::io::Error| err(format!("{what}: {e}"));
    let parent = out.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| io(&parent.display().to_string(), e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".distill-")
        .tempdir_in(parent)
        .map_err(|e| io(&parent.display().to_string(), e))?;
    let tensor = Tensor::from_vec(table.values, (table.rows, options.dims), &Device::Cpu)
        .map_err(|e| err(format!("table: {e}")))?;
    let weights = tmp.path().join("model.safetensors");
    candle_core::safetensors::save(&HashMap::from([(TENSOR, tensor)]), &weights)
        .map_err(|e| err(format!("writing {}: {e}", weights.display())))?;
    fs::File::open(&weights)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("model.safetensors", e))?;
    let weights_bytes = fs::read(&weights).map_err(|e| io("model.safetensors", e))?;
    write_synced(
        &tmp.path().join("tokenizer.json"),
        table.tokenizer_json.as_bytes(),
    )
    .map_err(|e| io("tokenizer.json", e))?;
    let mut files: Vec<&[u8]> = vec![&weights_bytes, table.tokenizer_json.as_bytes()];
    if let Some(t) = &table.teacher_json {
        write_synced(&tmp.path().join(TEACHER_TOKENIZER), t.as_bytes())
            .map_err(|e| io(TEACHER_TOKENIZER, e))?;
        files.push(t.as_bytes());
    }
    let revision = crate::static_model::revision(&files);
    let spec = teacher.spec();
    let config = serde_json::json!({
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "hidden_dim": options.dims,
        "normalize": true,
        "apply_pca": options.dims,
        "sif_coefficient": options.sif,
        "quarry": {
            "teacher": spec.model,
            "teacher_revision": spec.revision,
            "explained_variance": table.explained_variance,
            "words_added": table.words,
            "fitted_samples": table.fitted_samples,
            "fit_lambda": (table.fitted_samples > 0).then_some(options.fit.lambda),
            "revision": revision,
        },
    });
    let text = serde_json::to_string_pretty(&config).map_err(|e| err(e.to_string()))?;
    write_synced(&tmp.path().join("config.json"), text.as_bytes())
        .map_err(|e| io("config.json", e))?;
    let staged = tmp.keep();
    let fail = |e: EmbedError| {
        let _ = fs::remove_dir_all(&staged);
        e
    };
    // A model in the way is moved aside (not removed) until the new one is in place.
    let aside = if force && out.exists() {
        let aside = staged.with_extension("old");
        fs::rename(out, &aside)
            .map_err(|e| fail(io(&format!("moving {} aside", out.display()), e)))?;
        Some(aside)
    } else {
        None
    };
    if let Err(e) = fs::rename(&staged, out) {
        if let Some(a) = &aside {
            let _ = fs::rename(a, out);
        }
        // Another distill got there first (the rename does not replace a folder with files).
        let taken = matches!(
            e.kind(),
            std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists
        );
        return Err(fail(if taken {
            exists(out)
        } else {
            io(&format!("renaming into {}", out.display()), e)
        }));
    }
    if let Some(a) = aside {
        let _ = fs::remove_dir_all(a);
    }
    if let Ok(d) = fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(revision)
}

#[cfg(test)]
#[path = "distill_tests.rs"]
mod tests;

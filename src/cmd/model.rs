//! `quarry model pull`: fetch the local embedding model now rather than on first use;
//! `quarry model distill`: build the static fast tier from it.

use crate::cmd::{UsageError, emit, print_json};
use crate::config::Config;
use anyhow::Context;
use quarry_core::Embedder as _;
use quarry_embed::distill::{DEFAULT_STATIC_MODEL, DistillOptions, distill};
use quarry_embed::{DEFAULT_MODEL, LocalEmbedder, ensure_model, model_cache_dir};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Download (once) and verify by sha256 a model quarry knows, into the model cache
    /// ($QUARRY_MODEL_DIR, else the user's cache directory). Works offline once cached.
    Pull {
        /// Model name: one quarry knows how to download and verify.
        #[arg(default_value = DEFAULT_MODEL, value_parser = known_model)]
        name: String,
        /// Print `{"model", "dir"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build a static token-embedding model (model2vec's recipe: every vocabulary token through
    /// the transformer, PCA, Zipf/SIF weights) into the model cache, offline and
    /// deterministically, for `embedder = "static"`: hundreds of times faster than the
    /// transformer, at a lower quality. Ingest a big corpus with it, serve at once, and re-index
    /// to the transformer in the background (docs/configuration.md, "The fast tier").
    Distill {
        /// The transformer to distill (a model `quarry model pull` knows).
        #[arg(long, default_value = DEFAULT_MODEL)]
        from: String,
        /// Name of the static model: its folder in the model cache.
        #[arg(long, default_value = DEFAULT_STATIC_MODEL)]
        name: String,
        /// Dimensions kept by the PCA.
        #[arg(long, default_value_t = DistillOptions::default().dims)]
        dims: usize,
        /// The SIF coefficient of the token weights (0: every token weighs the same).
        #[arg(long, default_value_t = DistillOptions::default().sif)]
        sif: f64,
        /// Add the words of these files (text; of a .jsonl file the `title` and `text` of each
        /// line) that the tokenizer cuts into pieces, each with its own row (repeatable): the
        /// model keeps the meaning of a domain's rare words. Without it the model depends on
        /// nothing but the transformer.
        #[arg(long, value_name = "FILE")]
        vocabulary: Vec<std::path::PathBuf>,
        /// With --vocabulary: add words seen at least this often.
        #[arg(long, default_value_t = 3)]
        min_count: u64,
        /// With --vocabulary: add at most this many words, the most frequent.
        #[arg(long, default_value_t = 50_000)]
        max_words: usize,
        /// Fit the table to the transformer's vectors of the texts of these files (as for
        /// --vocabulary: a .jsonl line's `title` and `text`, else each non-empty line), so that a
        /// text's static vector comes closer to the transformer's (repeatable). Costs one
        /// transformer pass over the samples (--fit-max); a sample of the corpus the model will
        /// embed serves best.
        #[arg(long, value_name = "FILE")]
        fit: Vec<std::path::PathBuf>,
        /// With --fit: use at most this many texts, the first ones.
        #[arg(long, default_value_t = 10_000)]
        fit_max: usize,
        /// With --fit: the ridge weight; larger keeps the distilled rows, smaller follows the
        /// samples.
        #[arg(long, default_value_t = DistillOptions::default().fit.lambda)]
        fit_lambda: f64,
        /// Replace a static model of that name.
        #[arg(long)]
        force: bool,
        /// Print what was built as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `model pull NAME`: a model of `KNOWN_MODELS`, else a usage error naming them (exit 2).
fn known_model(name: &str) -> Result<String, String> {
    let known: Vec<&str> = quarry_embed::fetch::KNOWN_MODELS
        .iter()
        .map(|m| m.name)
        .collect();
    if known.contains(&name) {
        return Ok(name.to_owned());
    }
    Err(format!(
        "quarry can download {}; for another model, point embedders.NAME.model_dir at its folder (docs/configuration.md)",
        known.join(", ")
    ))
}

pub(crate) fn run(_config: &Config, args: Args) -> anyhow::Result<()> {
    match args.action {
        Action::Pull { name, json } => {
            let cache = model_cache_dir();
            let started = std::time::Instant::now();
            let download = crate::progress::Download::new(&name, &cache);
            let dir = ensure_model(&name, &cache, &|done, total| download.update(done, total))
                .with_context(|| format!("cannot fetch model {name}"))?;
            if json {
                print_json(&serde_json::json!({"model": name, "dir": dir}))?;
            } else {
                emit(&format!(
                    "model {name} ready in {} ({:.1} s)\n",
                    dir.display(),
                    started.elapsed().as_secs_f64()
                ));
            }
            Ok(())
        }
        Action::Distill {
            from,
            name,
            dims,
            sif,
            vocabulary,
            min_count,
            max_words,
            fit,
            fit_max,
            fit_lambda,
            force,
            json,
        } => {
            check_name(&name, &from)?;
            let cache = model_cache_dir();
            let out = cache.join(&name);
            if out.exists() && !force {
                return Err(UsageError(format!(
                    "a static model {name} exists already in {}; use it, or pass --force to build \
                     it again",
                    out.display()
                ))
                .into());
            }
            let download = crate::progress::Download::new(&from, &cache);
            let dir = ensure_model(&from, &cache, &|done, total| download.update(done, total))
                .with_context(|| format!("cannot fetch model {from}"))?;
            let teacher = LocalEmbedder::load(&dir, &from)?;
            let options = DistillOptions {
                dims,
                sif,
                fit: quarry_embed::distill::FitOptions {
                    lambda: fit_lambda,
                    ..DistillOptions::default().fit
                },
                ..DistillOptions::default()
            };
            options
                .check(teacher.spec().dimensions)
                .map_err(UsageError)?;
            let words = vocabulary_words(&teacher, &vocabulary, min_count, max_words)?;
            let mut samples = Vec::new();
            for_each_text(&fit, &mut |text| {
                if samples.len() < fit_max && !text.trim().is_empty() {
                    samples.push(text);
                }
                Ok(samples.len() < fit_max)
            })?;
            if fit_max == 0 && !fit.is_empty() {
                return Err(UsageError("--fit-max 0: use at least 1 sample text".into()).into());
            }
            if !fit.is_empty() && samples.is_empty() {
                return Err(UsageError("--fit: the files hold no text".into()).into());
            }
            let bar = if json {
                indicatif::ProgressBar::hidden()
            } else {
                crate::progress::bar(
                    0,
                    "{spinner} distilling {msg} [{bar:30}] {pos}/{len} tokens eta {eta}",
                )
            };
            bar.set_message(from.clone());
            let made = distill(
                &teacher,
                options,
                &words,
                &samples,
                &out,
                force,
                &|done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                },
            );
            bar.finish_and_clear();
            let made = made?;
            if json {
                print_json(&serde_json::json!({
                    "model": name,
                    "from": from,
                    "dir": made.dir,
                    "tokens": made.tokens,
                    "words": made.words,
                    "dimensions": made.dimensions,
                    "explained_variance": made.explained_variance,
                    "fitted_samples": made.fitted_samples,
                    "revision": made.revision,
                    "seconds": made.seconds,
                }))?;
            } else {
                emit(&format!(
                    "static model {name} distilled from {from} into {} in {:.1} s: {} tokens and \
                     {} added words × {} dimensions ({:.1} % of the variance), fitted to {} sample \
                     texts, revision {}\n\
                     use it with `embedder = \"static\"`{}\n",
                    made.dir.display(),
                    made.seconds,
                    made.tokens,
                    made.words,
                    made.dimensions,
                    made.explained_variance * 100.0,
                    made.fitted_samples,
                    made.revision,
                    if name == DEFAULT_STATIC_MODEL {
                        String::new()
                    } else {
                        format!(" and [embedders.static] model = \"{name}\"")
                    }
                ));
            }
            Ok(())
        }
    }
}

/// Refuses a model name that is not one plain folder name of the model cache, or that names a
/// model `quarry model pull` fetches (`--force` would replace it).
fn check_name(name: &str, from: &str) -> anyhow::Result<()> {
    let mut parts = std::path::Path::new(name).components();
    let plain = matches!(
        (parts.next(), parts.next()),
        (Some(std::path::Component::Normal(_)), None)
    ) && !name.starts_with('.');
    let known = name == from
        || quarry_embed::fetch::KNOWN_MODELS
            .iter()
            .any(|m| m.name == name);
    if !plain || known {
        return Err(UsageError(format!(
            "--name {name:?}: give the static model a folder name of its own in the model cache, \
             such as {DEFAULT_STATIC_MODEL:?} (no path, not the name of a model `quarry model \
             pull` fetches)"
        ))
        .into());
    }
    Ok(())
}

/// Distinct words counted before the rare ones are dropped (see [`vocabulary_words`]).
const MAX_DISTINCT_WORDS: usize = 2_000_000;

/// The words of `files` the teacher's tokenizer cuts into pieces, seen at least `min_count` times,
/// the `max_words` most frequent (ties by the word, so the list does not depend on the order of
/// the files' lines).
fn vocabulary_words(
    teacher: &LocalEmbedder,
    files: &[std::path::PathBuf],
    min_count: u64,
    max_words: usize,
) -> anyhow::Result<Vec<String>> {
    let mut counts = std::collections::HashMap::new();
    for_each_text(files, &mut |text| {
        quarry_embed::distill::count_split_words(
            teacher.untruncated_tokenizer(),
            &text,
            &mut counts,
        )?;
        if counts.len() > MAX_DISTINCT_WORDS {
            // Memory stays bounded: words seen once so far are forgotten (the counts of the
            // rest are then lower bounds).
            counts.retain(|_, n| *n > 1);
        }
        Ok(true)
    })?;
    let mut words: Vec<(String, u64)> = counts
        .into_iter()
        .filter(|(_, n)| *n >= min_count)
        .collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    words.truncate(max_words);
    Ok(words.into_iter().map(|(w, _)| w).collect())
}

/// Calls `each` with the text of every line of `files` (of a `.jsonl` file, the `title` and `text`
/// of each line), in order, until it returns false.
fn for_each_text(
    files: &[std::path::PathBuf],
    each: &mut dyn FnMut(String) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    use std::io::{BufRead, Read};
    for path in files {
        let jsonl = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            // Lines are cut at 1 MiB so that a file without newlines is read in bounded pieces.
            let n = reader
                .by_ref()
                .take(1 << 20)
                .read_until(b'\n', &mut line)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            let text = if jsonl {
                jsonl_text(&text)
            } else {
                text.into_owned()
            };
            if !each(text)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The `title` and `text` of a JSONL line (the line itself when it is not a JSON object).
fn jsonl_text(line: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(v) if v.is_object() => ["title", "text"]
            .iter()
            .filter_map(|k| v.get(*k).and_then(serde_json::Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => line.to_owned(),
    }
}

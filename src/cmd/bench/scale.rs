//! `quarry bench scale`: the steps of the scale bench in order. Check the flags and the data
//! directory; build the generators (SciFact's words and reference vectors from
//! `$QUARRY_DATASETS/scifact` when there, else the synthetic fallbacks); generate the corpus;
//! write the configuration with fresh keys; build (unless `--reuse`); measure sizes; compute the
//! exact top 10 of every query; measure through a server; report.

use super::args::{Args, BenchCommand, ScaleArgs};
use super::build::{
    ENGINE_STAGES, Quarry, REBUILD_STAGE, REINGEST_STAGES, Source, WORK_DIR, build, check,
    rebuild_index, reingest, sizes, stage,
};
use super::corpus::{Corpus, GROUPS, fraction};
use super::embeddings::{Bases, Mixer};
use super::measure::{Plan, WARMUP, measure};
use super::report::{Cell, Filtered, Report, render};
use super::setup::{Manifest, readers, write_config};
use super::words::Vocabulary;
use crate::cmd::{UsageError, emit, print_json};
use crate::config::Config;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Queries of each latency cell, at most.
pub(super) const LATENCY_QUERIES: usize = 500;

/// Runs `quarry bench`. `data_dir` is the data directory when one was given (`--data-dir` or
/// `QUARRY_DATA_DIR`), else the bench works in a temporary folder. `config` is the configuration
/// loaded; `saved` the same without the environment's overrides, which is what the bench writes
/// into the data directory (its child processes inherit the environment, so an override holds
/// for the run that sets it and not for a later `--reuse` run without it).
pub(crate) fn run(
    data_dir: Option<&Path>,
    config: &Config,
    saved: &Config,
    args: Args,
) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Scale(a) => scale(data_dir, (config, saved), a),
    }
}

/// The data directory of the run: the given one, or a new temporary folder.
fn data_dir(
    given: Option<&Path>,
    a: &ScaleArgs,
) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    let Some(dir) = given else {
        if a.reuse {
            return Err(UsageError(
                "--reuse needs --data-dir DIR: the data directory of an earlier run (with --data-dir, or --keep)".into(),
            )
            .into());
        }
        let temp = tempfile::Builder::new()
            .prefix("quarry-bench-scale-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        return Ok((temp.path().to_path_buf(), Some(temp)));
    };
    let has_catalog = dir.join("catalog.sqlite3").exists();
    if has_catalog && !a.reuse {
        return Err(UsageError(format!(
            "--data-dir {}: it already holds a catalog; pass --reuse to measure what an earlier \
             bench built there, or name a new folder",
            dir.display()
        ))
        .into());
    }
    let empty = std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none());
    if !has_catalog && !a.reuse && !empty {
        return Err(UsageError(format!(
            "--data-dir {}: the folder is not empty; the bench builds in a new or empty folder",
            dir.display()
        ))
        .into());
    }
    if a.reuse && !has_catalog {
        return Err(UsageError(format!(
            "--reuse: {} holds no catalog; run without --reuse to build there",
            dir.display()
        ))
        .into());
    }
    Ok((dir.to_path_buf(), None))
}

fn scale(
    given: Option<&Path>,
    (config, saved): (&Config, &Config),
    a: ScaleArgs,
) -> anyhow::Result<()> {
    a.check()?;
    if config.embedder == "none" {
        return Err(UsageError(
            "the bench loads vectors for the configured embedder, and it is `none`; set `embedder` (e.g. local)".into(),
        )
        .into());
    }
    let (dir, temp) = data_dir(given, &a)?;
    let work = dir.join(WORK_DIR);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let n = a.chunks as usize;
    let latency_queries = a.queries.min(LATENCY_QUERIES);
    let mut stages = Vec::new();

    let scifact = std::env::var_os("QUARRY_DATASETS").map(|d| PathBuf::from(d).join("scifact"));
    let found = |file: &str| {
        scifact
            .as_ref()
            .map(|d| d.join(file))
            .filter(|p| p.is_file())
    };
    let vocabulary = match found("corpus.jsonl") {
        Some(p) => Vocabulary::from_corpus(&p)?,
        None => Vocabulary::zipf(),
    };
    let bases = match found("minilm-corpus.parquet") {
        Some(p) => Bases::from_parquet(&p)?,
        None => Bases::synthetic(a.seed),
    };
    let manifest = Manifest {
        chunks: a.chunks,
        seed: a.seed,
        words: vocabulary.source.clone(),
        vectors: bases.source.clone(),
        embedder: config.embedder.clone(),
    };
    let manifest_path = work.join("manifest.json");
    if a.reuse {
        match Manifest::read(&manifest_path)? {
            Some(m) if m == manifest => {}
            Some(m) => {
                return Err(UsageError(format!(
                    "--reuse: {} was built from {}, and this run would generate {}; give the \
                     same --chunks, --seed, QUARRY_DATASETS and embedder",
                    dir.display(),
                    m.describe(),
                    manifest.describe()
                ))
                .into());
            }
            None => {
                return Err(UsageError(format!(
                    "--reuse: {} was not built by `quarry bench scale` (no {})",
                    dir.display(),
                    manifest_path.display()
                ))
                .into());
            }
        }
    }

    let mut corpus = stage("generate vectors and ACLs", n, &mut stages, || {
        let mixer = Mixer::calibrated(&bases, a.seed);
        Ok(Corpus::generate(
            &vocabulary,
            &mixer,
            a.seed,
            n,
            a.queries + WARMUP,
        ))
    })?;
    let config_path = dir.join("quarry.toml");
    let readers = readers(&GROUPS);
    write_config(saved, &readers, &config_path)?;
    let exe = std::env::current_exe().context("cannot find the quarry binary")?;
    let quarry = Quarry {
        exe: &exe,
        data_dir: &dir,
        config: &config_path,
    };
    let source = Source {
        corpus: &corpus,
        vocabulary: &vocabulary,
        seed: a.seed,
        embedder: &config.embedder,
        work: &work,
    };
    if a.reuse {
        check(&quarry, a.chunks)?;
    } else {
        build(&quarry, &source, &mut stages)?;
        manifest.write(&manifest_path)?;
    }
    if a.reingest {
        reingest(&quarry, &source, &mut stages)?;
    }
    if a.rebuild_index {
        rebuild_index(&quarry, a.chunks, &mut stages)?;
    }
    let sizes = sizes(&dir);

    eprintln!("bench: exact top 10 of {} queries…", a.queries);
    let t = Instant::now();
    corpus.normalize_as_stored();
    let truth = super::exact::top_k(
        &corpus.vectors,
        corpus.dims,
        &corpus.levels,
        GROUPS.len(),
        &corpus.query_vectors[..a.queries * corpus.dims],
    );
    let exact_scan_seconds = t.elapsed().as_secs_f64();

    let measured = measure(&Plan {
        exe: &exe,
        data_dir: &dir,
        config: &config_path,
        corpus: &corpus,
        readers: &readers,
        queries: a.queries,
        latency_queries,
        truth: &truth,
    })?;
    let cell = |mode: &str, level: usize, threads: usize| -> Option<&Cell> {
        measured.cells.iter().find(|c| {
            c.mode == mode && c.threads == threads && c.permitted_fraction == fraction(level)
        })
    };
    let p99 = |mode: &str, level: usize| cell(mode, level, 1).map_or(0.0, |c| c.p99_ms);
    let filtered = (0..GROUPS.len())
        .map(|level| Filtered {
            permitted_fraction: fraction(level),
            permitted_docs: corpus.permitted(level),
            recall_at_10: measured.recall[level],
            p99_ms: p99("hybrid", level),
            vector_p99_ms: p99("vector", level),
        })
        .collect();
    let kept = match temp {
        Some(t) if a.keep => Some(t.keep()),
        Some(_) => None,
        None => Some(dir.clone()),
    };
    let stage_of = |name: &str| stages.iter().find(|s| s.stage == name);
    let report = Report {
        chunks: a.chunks,
        build_seconds: stages
            .iter()
            .filter(|s| ENGINE_STAGES.contains(&s.stage.as_str()))
            .fold(0.0, |sum, s| sum + s.seconds),
        reingest_seconds: a.reingest.then(|| {
            stages
                .iter()
                .filter(|s| REINGEST_STAGES.contains(&s.stage.as_str()))
                .fold(0.0, |sum, s| sum + s.seconds)
        }),
        rebuild_seconds: stage_of(REBUILD_STAGE).map(|s| s.seconds),
        rebuild_peak_rss_bytes: stage_of(REBUILD_STAGE).and_then(|s| s.peak_rss_bytes),
        recall_at_10: measured.recall[0],
        vector_qps: cell("vector", 0, 2).map_or(0.0, |c| c.qps),
        hybrid_p50_ms: cell("hybrid", 0, 1).map_or(0.0, |c| c.p50_ms),
        hybrid_p99_ms: p99("hybrid", 0),
        rss_bytes: measured.memory.rss,
        rss_peak_bytes: measured.memory.peak,
        restart_seconds: measured.restart_seconds,
        filtered,
        seed: a.seed,
        queries: a.queries,
        latency_queries,
        words: vocabulary.source.clone(),
        vectors: bases.source.clone(),
        vector_mean_cosine: corpus.mean_cosine,
        embedder: config.embedder.clone(),
        model_calls: measured.model_calls,
        sizes,
        stages,
        exact_scan_seconds,
        cells: measured.cells,
        data_dir: kept.map(|p| p.display().to_string()),
    };
    if a.json {
        print_json(&report)
    } else {
        emit(&render(&report));
        Ok(())
    }
}

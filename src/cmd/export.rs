//! `quarry export chunks`: the chunks of a collection that lack vectors of its embedder, written
//! as Parquet chunk files (`quarry_index::ingest::chunk_files`) to be embedded elsewhere
//! (`quarry embed` on a cluster) and loaded back with `quarry ingest DIR/*.parquet`.
//!
//! The chunks are read from the catalog a page at a time, in chunk-hash order, and written to
//! `chunks-00000.parquet`, `chunks-00001.parquet`, … of at most `--rows-per-file` rows each; each
//! file is written beside its name and renamed into place when complete.

use super::{UsageError, emit, open_engine_to_read, print_json};
use crate::config::Config;
use anyhow::{Context, bail};
use quarry_core::{ContentHash, EmbedderSpec};
use quarry_index::ingest::chunk_files::{
    ChunkRow, ParquetOut, chunk_batch, chunk_schema, spec_metadata,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Chunks read from the catalog at a time (and rows per record batch written).
const PAGE: usize = 2048;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Write the chunks of a collection that lack vectors of its embedder as Parquet files
    /// (columns `id` = chunk hash, `title`, `text` = exactly what the embedder is given; schema
    /// metadata `embedder_spec`, `embedder_fingerprint`, `embedder_name`), to embed them elsewhere
    /// with `quarry embed` and load the vectors back with `quarry ingest OUT/*.parquet`.
    Chunks(ChunksArgs),
}

#[derive(Debug, clap::Args)]
pub struct ChunksArgs {
    /// The collection.
    #[arg(long, default_value = "default", value_parser = crate::cmd::collection_name)]
    pub collection: String,
    /// The folder to write `chunks-NNNNN.parquet` into (created if missing). It must hold no
    /// `chunks-*.parquet` files yet, unless --force.
    #[arg(long)]
    pub out: PathBuf,
    /// The embedder whose vectors are missing: a configured name, which must compute the
    /// collection's active embedding version (the only vectors `quarry ingest` loads)
    /// [default: the collection's embedder].
    #[arg(long, value_name = "NAME")]
    pub embedder: Option<String>,
    /// Rows per file at most (a cluster embeds one file per task).
    #[arg(long, value_name = "N", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rows_per_file: u64,
    /// Replace the `chunks-*.parquet` files --out holds from an earlier export.
    #[arg(long)]
    pub force: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What an export wrote.
#[derive(Debug, serde::Serialize)]
struct Exported {
    collection: String,
    embedder: String,
    fingerprint: String,
    out: PathBuf,
    /// Chunks written, each once.
    chunks: u64,
    /// The files written, in order.
    files: Vec<String>,
    seconds: f64,
}

pub(crate) fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    let What::Chunks(args) = args.what;
    let started = Instant::now();
    let engine = open_engine_to_read(data_dir, config)?;
    let (name, spec) = target(&engine, config, &args)?;
    prepare_out(&args.out, args.force)?;

    let schema = chunk_schema(spec_metadata(&name, &spec));
    let fingerprint = spec.fingerprint();
    let mut files = Vec::new();
    let mut chunks = 0u64;
    let mut out: Option<(ParquetOut, u64)> = None;
    let mut after: Option<ContentHash> = None;
    loop {
        let page =
            engine.chunks_without_vectors(&args.collection, &fingerprint, after.as_ref(), PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.0);
        let mut rows = page
            .into_iter()
            .map(|(h, title, text)| ChunkRow {
                id: h.to_hex(),
                title,
                text,
            })
            .peekable();
        while rows.peek().is_some() {
            if out.is_none() {
                let file_name = format!("chunks-{:05}.parquet", files.len());
                let f = ParquetOut::create(&args.out.join(&file_name), schema.clone())?;
                files.push(file_name);
                out = Some((f, 0));
            }
            let mut full = false;
            if let Some((file, written)) = &mut out {
                let room = usize::try_from(args.rows_per_file - *written).unwrap_or(usize::MAX);
                let part: Vec<ChunkRow> = rows.by_ref().take(room).collect();
                file.write(&chunk_batch(&schema, &part)?)?;
                *written += part.len() as u64;
                chunks += part.len() as u64;
                full = *written == args.rows_per_file;
            }
            if full && let Some((f, _)) = out.take() {
                f.finish()?;
            }
        }
    }
    if let Some((last, _)) = out.take() {
        last.finish()?;
    }

    let summary = Exported {
        collection: args.collection,
        embedder: name,
        fingerprint: fingerprint.to_hex(),
        out: args.out,
        chunks,
        files,
        seconds: started.elapsed().as_secs_f64(),
    };
    if args.json {
        return print_json(&summary);
    }
    let what = if summary.chunks == 0 {
        "nothing to export: every chunk has a vector of".to_owned()
    } else {
        format!("{} chunks lacking vectors of", summary.chunks)
    };
    let place = if summary.chunks == 0 {
        String::new()
    } else {
        format!(
            " written to {} in {} file{}",
            summary.out.display(),
            summary.files.len(),
            if summary.files.len() == 1 { "" } else { "s" }
        )
    };
    emit(&format!(
        "{}: {what} embedder `{}` (fingerprint {}){place} in {:.2}s\n",
        summary.collection,
        summary.embedder,
        &summary.fingerprint[..12],
        summary.seconds
    ));
    Ok(())
}

/// The embedder the export is for: its name and spec. The collection's active version decides
/// (its stored spec: `quarry ingest` loads vectors of that fingerprint only); `--embedder` must
/// name an embedder that computes it.
fn target(
    engine: &quarry_index::Engine,
    config: &Config,
    args: &ChunksArgs,
) -> anyhow::Result<(String, EmbedderSpec)> {
    let c = &args.collection;
    engine
        .collection(c)
        .with_context(|| format!("cannot export the chunks of `{c}`"))?;
    let active = engine.versions(c)?.into_iter().find(|v| v.active);
    let Some(active) = active else {
        bail!(
            "collection `{c}` has no embedder (embedder = \"none\"), so no vectors can be loaded \
             into it; create it with an embedder (`quarry collections create {c} --embedder NAME`)"
        );
    };
    let Some(name) = &args.embedder else {
        return Ok((active.embedder, active.spec));
    };
    let embedder = crate::embedders::load(config, name)
        .with_context(|| format!("--embedder {name}"))?
        .ok_or_else(|| UsageError(format!("--embedder {name}: that embedder makes no vectors")))?;
    let fingerprint = embedder.spec().fingerprint();
    if fingerprint.to_hex() != active.fingerprint {
        bail!(
            "--embedder {name} computes vectors of fingerprint {}, but collection `{c}` uses \
             embedder `{}` (fingerprint {}); `quarry ingest` loads only vectors of the \
             collection's embedder. Export without --embedder, or re-index the collection with \
             `{name}` first (`quarry reindex --collection {c} --embedder {name}`)",
            fingerprint.short(),
            active.embedder,
            &active.fingerprint[..12]
        );
    }
    Ok((name.clone(), active.spec))
}

/// Creates `out` if missing; refuses one that holds chunk files of an earlier export unless
/// `force`, which removes them (and nothing else).
fn prepare_out(out: &Path, force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut earlier = Vec::new();
    for entry in std::fs::read_dir(out).with_context(|| format!("cannot read {}", out.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("chunks-") && name.ends_with(".parquet") {
            earlier.push(name);
        }
    }
    if earlier.is_empty() {
        return Ok(());
    }
    if !force {
        earlier.sort();
        return Err(UsageError(format!(
            "{} already holds {} chunk file(s) of an earlier export ({}…); export into an empty \
             folder, or pass --force to replace them",
            out.display(),
            earlier.len(),
            earlier[0]
        ))
        .into());
    }
    for name in earlier {
        let p = out.join(&name);
        std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
    }
    Ok(())
}

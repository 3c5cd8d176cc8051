//! `quarry reindex`, `quarry jobs` and `quarry versions`: embedding versions and the re-index
//! jobs that build them.
//!
//! On the data dir, `reindex` queues the job and runs it here with a progress bar (if a server on
//! the same data dir picks it up first, this command follows it instead). With `--server`, the
//! server's worker runs it; `--wait` follows it to its end.

use super::remote::{Remote, ServerArgs};
use super::{emit, open_existing_engine, print_json, usage_if_input};
use crate::config::Config;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use quarry_index::catalog::{Job, JobKind, JobResult, JobState};
use quarry_index::jobs;
use quarry_index::{ErrorKind, VersionInfo};
use quarry_server::views;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["embedder", "chunking", "quantization", "rebuild_index"])))]
pub struct ReindexArgs {
    /// The embedder to re-embed with: a [embedders.NAME] table of the configuration (or the
    /// built-ins `local`, `hash`).
    #[arg(long)]
    pub embedder: Option<String>,
    /// Re-chunk with the configured chunk.* settings instead: every document split anew, BM25
    /// and vectors swapped to the new chunks together.
    #[arg(long)]
    pub chunking: bool,
    /// Rebuild the active version's vector index with this quantization instead (`int8`:
    /// sealed segments search one-byte codes and rescore from full vectors on disk; `binary`:
    /// one bit a dimension, a third of int8's memory, more candidates rescored; `none`: every
    /// vector as f32 in memory). From the stored vectors: nothing is embedded.
    #[arg(long, value_parser = ["int8", "binary", "none"])]
    pub quantization: Option<String>,
    /// Rebuild the active version's vector index from its stored vectors with its own
    /// quantization and the [vector] settings of now (m, ef_construction, segment_points):
    /// nothing is embedded; the old index serves until the new one is switched in.
    #[arg(long)]
    pub rebuild_index: bool,
    /// The collection to re-index.
    #[arg(long, default_value = "default", value_parser = crate::cmd::collection_name)]
    pub collection: String,
    #[command(flatten)]
    pub server: ServerArgs,
    /// With --server: follow the job to its end (a progress bar on a terminal).
    #[arg(long)]
    pub wait: bool,
    /// Print the result as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: Option<JobsCommand>,
    /// Print the result as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// Run the jobs waiting here: queued ones, and those a process left running when it died or
    /// was stopped (they resume where their stored vectors end). A job a live process runs is
    /// left to it.
    Resume {
        /// Print the result as one JSON document on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Follow job ID (or every queued and running job, one after the other) to its end with a
    /// progress bar on a terminal: chunks done of the total, chunks embedded, rate and ETA. The
    /// job may run here or in a server on this data directory. Exits 1 if a job failed.
    Watch {
        /// The job to follow [default: every queued and running job].
        id: Option<String>,
        /// Print the jobs as they ended, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a queued job, or a running one at its next batch.
    Cancel {
        /// The job's id, as `quarry jobs` lists it.
        id: String,
        /// Print the result as one JSON document on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct VersionsArgs {
    #[command(subcommand)]
    pub command: Option<VersionsCommand>,
    /// The collection whose versions to list or change.
    #[arg(long, default_value = "default", global = true, value_parser = crate::cmd::collection_name)]
    pub collection: String,
    /// Print the result as one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum VersionsCommand {
    /// Make a version the active one: promote a `ready` version or roll back to an earlier one.
    /// Its vectors are stored, so nothing is embedded (except chunks added since it served).
    Activate {
        /// The version's id, as `quarry versions` lists it.
        id: String,
    },
    /// Delete a version's vector index (not the active one); its stored vectors stay cached.
    Retire {
        /// The version's id, as `quarry versions` lists it.
        id: String,
    },
    /// Re-embed the active version's canary chunks and compare with their stored vectors: a
    /// provider that changed its model behind the same name shows as a low cosine (exit 1).
    Check,
}

pub(crate) fn reindex(data_dir: &Path, config: &Config, args: ReindexArgs) -> anyhow::Result<()> {
    let body = match (&args.embedder, &args.quantization) {
        (Some(e), _) => serde_json::json!({ "embedder": e }),
        (None, Some(q)) => serde_json::json!({ "quantization": q }),
        (None, None) if args.rebuild_index => serde_json::json!({ "rebuild_index": true }),
        (None, None) => serde_json::json!({ "chunk": config.chunk }),
    };
    if let Some(server) = args.server.remote() {
        let answer = server.post(
            &format!("/v1/collections/{}/reindex", args.collection),
            &body,
        )?;
        let id = answer["job_id"]
            .as_str()
            .context("unexpected answer from the server: no `job_id`")?
            .to_owned();
        if !args.wait {
            if args.json {
                return print_json(&answer["job"]);
            }
            emit(&format!(
                "queued re-index job {id}; follow it with `quarry reindex ... --wait` or GET /v1/jobs/{id}\n"
            ));
            return Ok(());
        }
        let job = follow(&|| server_job(&server, &id), args.json)?;
        return report(&job, args.json);
    }
    let engine = open_existing_engine(data_dir, config)?;
    let queued = match (&args.embedder, &args.quantization) {
        (Some(e), _) => jobs::enqueue_reindex(&engine, &args.collection, e),
        (None, Some(q)) => q
            .parse()
            .and_then(|q| jobs::enqueue_requantize(&engine, &args.collection, q)),
        (None, None) if args.rebuild_index => {
            jobs::enqueue_rebuild_index(&engine, &args.collection)
        }
        (None, None) => jobs::enqueue_rechunk(&engine, &args.collection, config.chunk),
    };
    let job = queued.map_err(|e| usage_if_input(e.into()))?;
    let bar = bar(args.json);
    let ran = jobs::run(&engine, &job.id, &|j| show(&bar, j));
    let job = match ran {
        Ok(job) => job,
        // a server on this data dir took the job first: follow it
        Err(e) if e.kind() == ErrorKind::Busy => {
            follow(&|| Ok(jobs::job(&engine, &job.id)?), args.json)?
        }
        Err(e) => return Err(e.into()),
    };
    bar.finish_and_clear();
    report(&job, args.json)
}

fn server_job(server: &Remote, id: &str) -> anyhow::Result<Job> {
    let v = server.get(&format!("/v1/jobs/{id}"))?;
    serde_json::from_value(v).context("unexpected job from the server")
}

/// Polls `get` until the job ends, showing its progress.
fn follow(get: &dyn Fn() -> anyhow::Result<Job>, quiet: bool) -> anyhow::Result<Job> {
    let bar = bar(quiet);
    loop {
        let job = get()?;
        show(&bar, &job);
        if !job.state.is_pending() {
            bar.finish_and_clear();
            return Ok(job);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn bar(quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(0);
    b.set_style(
        ProgressStyle::with_template(
            "{spinner} re-indexing [{bar:30}] {pos}/{len} chunks {per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b
}

fn show(bar: &ProgressBar, job: &Job) {
    bar.set_length(job.total);
    bar.set_position(job.processed);
    bar.set_message(match job.kind {
        JobKind::Requantize => "indexed".to_owned(),
        _ => match job.tokens_per_s() {
            Some(t) => format!("{} embedded · {t:.0} tokens/s", job.embedded),
            None => format!("{} embedded", job.embedded),
        },
    });
}

/// What a finished re-index did: promoted or held back (with the comparison to run), or why it
/// failed (exit 1).
fn report(job: &Job, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(&views::job(job))?;
    } else {
        emit(&job_text(job));
    }
    match job.state {
        JobState::Succeeded | JobState::Cancelled => Ok(()),
        _ => Err(anyhow::anyhow!(
            "job {} {}: {}",
            job.id,
            job.state,
            job.error.as_deref().unwrap_or("no error recorded")
        )),
    }
}

fn job_text(job: &Job) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "job {} ({} of {}): {}; {} of {} chunks, {} embedded, {} already stored",
        job.id,
        job.kind,
        job.collection,
        job.state,
        job.processed,
        job.total,
        job.embedded,
        job.cache_hits
    );
    let r = match &job.result {
        None => return o,
        Some(JobResult::Rechunk(r)) => {
            let generation = r.generation.map_or("null".to_owned(), |g| g.to_string());
            let _ = writeln!(
                o,
                "re-chunked with max_tokens {}, overlap {}: {} chunks before, {} after (generation {generation})",
                r.chunk.max_tokens, r.chunk.overlap, r.chunks_before, r.chunks_after,
            );
            return o;
        }
        Some(JobResult::Requantize(r)) => {
            let _ = writeln!(
                o,
                "version {}: vector index rebuilt with quantization `{}` ({} points, {} chunks without a stored vector; generation {})",
                r.version,
                r.quantization.as_str(),
                r.points,
                r.without_vector,
                r.generation
            );
            return o;
        }
        Some(JobResult::Reindex(r)) => r,
    };
    let version = &r.version;
    if r.promoted {
        let _ = writeln!(o, "version {version} is now active");
    } else {
        let _ = writeln!(
            o,
            "version {version} is ready but NOT active: the eval gate held it back; \
             `quarry versions activate {version}` promotes it anyway"
        );
    }
    let Some(gate) = &r.gate else {
        return o;
    };
    if !gate.ran {
        let _ = writeln!(o, "eval gate: none ran (the collection has no golden set)");
    }
    for set in gate.sets.iter().flatten() {
        let modes: Vec<String> = set
            .ndcg_at_10
            .iter()
            .map(|(mode, m)| {
                format!(
                    "{mode} {:.4} -> {:.4}{}",
                    m.active,
                    m.new,
                    if m.ok { "" } else { " (too low)" }
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "eval gate, golden set {}: nDCG@10 {}; details: {}",
            set.golden,
            modes.join(", "),
            set.compare
        );
    }
    o
}

pub(crate) fn jobs(data_dir: &Path, config: &Config, args: JobsArgs) -> anyhow::Result<()> {
    let engine = open_existing_engine(data_dir, config)?;
    match args.command {
        Some(JobsCommand::Resume { json }) => {
            let mut done = Vec::new();
            while let Some(job) = jobs::next(&engine)? {
                let bar = bar(json);
                let ran = jobs::run(&engine, &job.id, &|j| show(&bar, j));
                bar.finish_and_clear();
                match ran {
                    Ok(j) => done.push(j),
                    Err(e) if e.kind() == ErrorKind::Busy => break,
                    Err(e) => return Err(e.into()),
                }
            }
            if json {
                return print_json(&views::jobs(&done));
            }
            if done.is_empty() {
                emit("no job waiting to run\n");
            }
            for j in &done {
                emit(&job_text(j));
            }
            Ok(())
        }
        Some(JobsCommand::Watch { id, json }) => {
            let ids = match id {
                Some(id) => vec![jobs::job(&engine, &id)?.id],
                None => {
                    let mut pending: Vec<Job> = jobs::list(&engine, None)?
                        .into_iter()
                        .filter(|j| j.state.is_pending())
                        .collect();
                    // the running one first, then the queue in its order
                    pending.sort_by_key(|j| (j.state != JobState::Running, j.created_at));
                    pending.into_iter().map(|j| j.id).collect()
                }
            };
            let mut ended = Vec::new();
            for id in &ids {
                ended.push(follow(&|| Ok(jobs::job(&engine, id)?), json)?);
            }
            if json {
                print_json(&views::jobs(&ended))?;
            } else if ended.is_empty() {
                emit("no job queued or running\n");
            }
            for j in &ended {
                if !json {
                    emit(&job_text(j));
                }
            }
            match ended.iter().find(|j| j.state == JobState::Failed) {
                Some(j) => Err(anyhow::anyhow!(
                    "job {} failed: {}",
                    j.id,
                    j.error.as_deref().unwrap_or("no error recorded")
                )),
                None => Ok(()),
            }
        }
        Some(JobsCommand::Cancel { id, json }) => {
            let job = jobs::cancel(&engine, &id)?;
            if json {
                return print_json(&views::job(&job));
            }
            emit(&job_text(&job));
            Ok(())
        }
        None => {
            let list = jobs::list(&engine, None)?;
            if args.json {
                return print_json(&views::jobs(&list));
            }
            if list.is_empty() {
                emit("no jobs\n");
            }
            for j in &list {
                emit(&job_text(j));
            }
            Ok(())
        }
    }
}

pub(crate) fn versions(data_dir: &Path, config: &Config, args: VersionsArgs) -> anyhow::Result<()> {
    let engine = open_existing_engine(data_dir, config)?;
    let c = &args.collection;
    match args.command {
        Some(VersionsCommand::Activate { id }) => {
            let v = engine
                .activate_version(c, &id)
                .map_err(|e| usage_if_input(e.into()))?;
            if args.json {
                return print_json(&v);
            }
            emit(&format!("version {} of {c} is active\n", v.id));
            Ok(())
        }
        Some(VersionsCommand::Retire { id }) => {
            engine
                .retire_version(c, &id)
                .map_err(|e| usage_if_input(e.into()))?;
            if args.json {
                return print_json(&serde_json::json!({ "retired": id }));
            }
            emit(&format!("version {id} of {c} is retired\n"));
            Ok(())
        }
        Some(VersionsCommand::Check) => {
            let Some(r) = jobs::check_canary(&engine, c).map_err(|e| usage_if_input(e.into()))?
            else {
                anyhow::bail!(
                    "collection {c} has no vectors to check (no embedding version, or no chunk with a stored vector)"
                );
            };
            if args.json {
                print_json(&r)?;
            } else {
                emit(&format!(
                    "version {} of {c} ({}): {} canary chunks re-embedded, lowest cosine {:.6}\n",
                    r.version, r.embedder, r.checked, r.min_cosine
                ));
            }
            if r.drifted {
                anyhow::bail!(
                    "embedding drift: embedder `{}` no longer reproduces the vectors of version {} \
                     (lowest cosine {:.4} < reindex.canary_min_cosine {}); the provider changed its model \
                     behind the same name. Re-index to a new embedder name, or pin the provider's model version",
                    r.embedder,
                    r.version,
                    r.min_cosine,
                    config.reindex.canary_min_cosine
                );
            }
            Ok(())
        }
        None => {
            let list = engine.versions(c)?;
            if args.json {
                return print_json(&views::versions(&list));
            }
            emit(&versions_table(&list));
            Ok(())
        }
    }
}

fn versions_table(list: &[VersionInfo]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<28} {:<10} {:<10} {:>8}  {:<6} model",
        "version", "state", "embedder", "vectors", "quant"
    );
    for v in list {
        let _ = writeln!(
            o,
            "{:<28} {:<10} {:<10} {:>8}  {:<6} {} ({} dims)",
            v.id,
            v.state,
            v.embedder,
            v.vectors,
            v.quantization.as_str(),
            v.spec.model,
            v.spec.dimensions
        );
    }
    o
}

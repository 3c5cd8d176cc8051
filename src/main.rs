//! The `quarry` binary: command-line parsing, configuration, and wiring of the engine, the HTTP
//! server and the eval runner. The only crate that uses `anyhow`.

mod cmd;
mod config;
mod embedders;
mod eval;
mod logs;
mod progress;

use clap::{Parser, Subcommand};

/// mimalloc, not glibc's allocator: an HNSW build is millions of small allocations from two
/// insert threads, freed a segment at a time. At 100,000 chunks a rebuild of the vector index
/// peaked at 517 MB instead of 565 MB and ran 9 % faster; `no_thp` (no transparent huge pages)
/// keeps a server's resident memory within 5 % of glibc's (BENCHMARKS.md, "The rebuild"). The
/// sealed vector segments' rows ask for huge pages themselves (`quarry_index`'s `vectors::rows`,
/// which allows them again for the process where the system's policy is `madvise`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::PathBuf;
use std::process::ExitCode;

/// quarry: a retrieval engine for RAG. Ingest folders, serve ranked passages over HTTP.
#[derive(Debug, Parser)]
#[command(
    name = "quarry",
    version,
    about = "quarry: a retrieval engine for RAG. Ingest folders and JSONL corpora, embed them with a local model, serve hybrid (BM25 + vector) retrieval over HTTP and the CLI.",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    /// Where quarry keeps its catalog and indexes.
    #[arg(
        long,
        global = true,
        env = "QUARRY_DATA_DIR",
        default_value = "./quarry-data"
    )]
    pub data_dir: PathBuf,
    /// TOML settings file [default: <data-dir>/quarry.toml if present].
    #[arg(long, global = true, env = "QUARRY_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add or update documents from files, folders and BEIR-style .jsonl corpora.
    Ingest(cmd::ingest::Args),
    /// Run the HTTP server.
    Serve(cmd::serve::Args),
    /// Search a collection, locally or on a running server.
    Query(Box<cmd::query::Args>),
    /// Collections with their document and chunk counts.
    Status(cmd::status::Args),
    /// Measure retrieval quality on a BEIR-layout dataset or a golden set; list and compare runs.
    Eval(Box<eval::Args>),
    /// Golden sets: judged queries of a collection, for `quarry eval --golden NAME`.
    Golden(cmd::golden::Args),
    /// Write out the chunks of a collection that lack vectors, as Parquet, to embed them elsewhere
    /// (`export chunks`).
    Export(cmd::export::Args),
    /// Embed chunk files of `quarry export chunks` with a configured embedder into vector files
    /// for `quarry ingest` (no data directory needed: runs on cluster workers).
    Embed(cmd::embed::Args),
    /// Download and verify the local embedding model (done automatically on first use), or
    /// distill the static fast tier from it.
    Model(cmd::model::Args),
    /// Re-embed a collection with another embedder (or re-chunk it): a new embedding version built
    /// while the active one serves, checked against the golden sets, then made active.
    Reindex(cmd::versions::ReindexArgs),
    /// Background jobs (re-index, re-chunk) and their progress; resume or cancel them.
    Jobs(cmd::versions::JobsArgs),
    /// A collection's embedding versions; activate (promote, roll back) or retire one.
    Versions(cmd::versions::VersionsArgs),
    /// Create collections with their settings, list them with their sizes, delete them.
    Collections(cmd::collections::Args),
    /// Erase one document from the data directory: its text, chunks, vectors of every embedding
    /// version, embedding cache entries, BM25 entries, canaries and eval records.
    Forget(cmd::collections::ForgetArgs),
    /// Backups: a consistent copy of the data dir taken while it is in use, checked and restored.
    Snapshot(cmd::snapshot::Args),
    /// Measurements of quarry itself: `bench scale` builds a collection of N generated chunks
    /// (no model) and measures build, size, memory, restart, recall and query latency.
    Bench(cmd::bench::Args),
    /// Print a shell completion script: `quarry completions bash > /etc/bash_completion.d/quarry`
    /// (zsh, fish: docs/install.md).
    Completions(cmd::completions::Args),
}

fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    // `bench` builds in a temporary folder unless a data directory is named.
    let data_dir_given = !matches!(
        matches.value_source("data_dir"),
        None | Some(clap::parser::ValueSource::DefaultValue)
    );
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Command::Completions(args) = cli.command {
        // Needs no configuration: it must work wherever the shell starts.
        return match cmd::completions::run(<Cli as clap::CommandFactory>::command(), args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    let verbose_default = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    // The configuration first, since `[log]` says how to log; its warnings are logged after.
    let loaded = config::load_reporting(cli.config.as_deref(), &cli.data_dir, std::env::vars());
    let (config, warnings) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logs::init(verbose_default, config.log.format) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    for w in warnings {
        tracing::warn!("{w}");
    }
    let result = match cli.command {
        Command::Ingest(args) => cmd::ingest::run(&cli.data_dir, &config, args),
        Command::Reindex(args) => cmd::versions::reindex(&cli.data_dir, &config, args),
        Command::Jobs(args) => cmd::versions::jobs(&cli.data_dir, &config, args),
        Command::Versions(args) => cmd::versions::versions(&cli.data_dir, &config, args),
        Command::Serve(args) => cmd::serve::run(&cli.data_dir, &config, args),
        Command::Query(args) => cmd::query::run(&cli.data_dir, &config, *args),
        Command::Status(args) => cmd::status::run(&cli.data_dir, &config, args),
        Command::Eval(args) => eval::run(&cli.data_dir, &config, *args),
        Command::Golden(args) => cmd::golden::run(&cli.data_dir, &config, args),
        Command::Export(args) => cmd::export::run(&cli.data_dir, &config, args),
        Command::Embed(args) => cmd::embed::run(&config, args),
        Command::Model(args) => cmd::model::run(&config, args),
        Command::Collections(args) => cmd::collections::run(&cli.data_dir, &config, args),
        Command::Forget(args) => cmd::collections::forget(&cli.data_dir, &config, args),
        Command::Snapshot(args) => cmd::snapshot::run(&cli.data_dir, &config, args),
        Command::Bench(args) => {
            // what the bench writes into its data directory: the configuration without the
            // environment's overrides, which its child processes read from their environment
            let no_env = std::iter::empty::<(String, String)>();
            match config::load_reporting(cli.config.as_deref(), &cli.data_dir, no_env) {
                Ok((saved, _)) => {
                    let given = data_dir_given.then_some(cli.data_dir.as_path());
                    cmd::bench::run(given, &config, &saved, args)
                }
                Err(e) => Err(cmd::UsageError(format!(
                    "the bench writes the configuration file's settings into its data directory \
                     and passes the environment's QUARRY_* settings to its processes, but the \
                     file is invalid without them ({e:#}); move those settings into the file"
                ))
                .into()),
            }
        }
        Command::Completions(_) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = if e.downcast_ref::<cmd::UsageError>().is_some() {
                2
            } else {
                1
            };
            let e = cmd::with_collections_here(e, &cli.data_dir, &config);
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag and argument of every command says what it does in `--help` (`--json`
    /// included), so a new one cannot be added without it.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let text = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                if !arg.is_hide_set() && text.trim().is_empty() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = super::Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "quarry", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
        let json = cmd
            .find_subcommand("status")
            .and_then(|s| s.get_arguments().find(|a| a.get_id() == "json"))
            .and_then(|a| a.get_help())
            .map(|h| h.to_string());
        assert!(
            json.as_ref().is_some_and(|h| h.contains("JSON")),
            "{json:?}"
        );
    }
}

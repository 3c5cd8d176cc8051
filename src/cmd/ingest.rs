//! `quarry ingest PATH...`

use super::{emit, open_engine, print_json};
use crate::config::Config;
use indicatif::{ProgressBar, ProgressStyle};
use quarry_index::{IngestOptions, IngestSummary, Progress};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or folders. Folders are walked recursively (honouring .gitignore and .quarryignore);
    /// .jsonl files are read as BEIR corpora ({"_id", "title", "text"} per line).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Collection to use (1 to 64 letters, digits, `_` or `-`).
    #[arg(long, default_value = "default")]
    pub collection: String,
    /// Principal allowed to read documents that carry no ACL of their own (user:ID, group:ID, public).
    #[arg(long = "acl", value_name = "PRINCIPAL", value_parser = parse_principal)]
    pub acl: Vec<String>,
    /// Also delete documents that disappeared from the walked folders.
    #[arg(long)]
    pub sync: bool,
    /// Skip files larger than this many bytes [default: ingest.max_file_bytes = 32 MiB].
    #[arg(long)]
    pub max_file_bytes: Option<u64>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

fn parse_principal(s: &str) -> Result<String, String> {
    let ok = s == "public"
        || s.strip_prefix("user:")
            .or_else(|| s.strip_prefix("group:"))
            .is_some_and(|id| !id.is_empty());
    if ok {
        Ok(s.to_owned())
    } else {
        Err("a principal is user:ID, group:ID or public".into())
    }
}

pub fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    let engine = open_engine(data_dir, config)?;
    let opts = IngestOptions {
        collection: args.collection,
        acl: args.acl,
        sync: args.sync,
        max_file_bytes: args.max_file_bytes.unwrap_or(config.ingest.max_file_bytes),
        batch_docs: config.ingest.batch_docs,
    };
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} ingesting [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let progress = Bar(bar);
    let summary = quarry_index::ingest(&engine, &args.paths, &opts, &progress)?;
    progress.0.finish_and_clear();
    if args.json {
        print_json(&summary)
    } else {
        print_summary(&summary);
        Ok(())
    }
}

fn print_summary(s: &IngestSummary) {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}: {} added, {} updated, {} unchanged, {} deleted; {} chunks in {:.2}s",
        s.collection, s.added, s.updated, s.unchanged, s.deleted, s.chunks, s.seconds
    );
    if !s.skipped.is_empty() {
        let parts: Vec<String> = s.skipped.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let _ = writeln!(o, "skipped: {}", parts.join(", "));
    }
    if !s.warnings.is_empty() {
        let parts: Vec<String> = s.warnings.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let _ = writeln!(o, "warnings: {}", parts.join(", "));
    }
    const SHOWN: usize = 20;
    for p in s.problems.iter().take(SHOWN) {
        let at = p.line.map(|l| format!(":{l}")).unwrap_or_default();
        let _ = writeln!(o, "  {}{at}: {}: {}", p.path, p.reason, p.message);
    }
    if s.problems.len() > SHOWN {
        let _ = writeln!(
            o,
            "  … and {} more (use --json for all)",
            s.problems.len() - SHOWN
        );
    }
    emit(&o);
}

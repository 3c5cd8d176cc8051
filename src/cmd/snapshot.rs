//! `quarry snapshot create | restore | verify`: backups of a data directory. `create` runs beside a
//! server (it takes the writer lock only while it hard-links the index files); `restore` needs a
//! data directory no quarry process uses.

use crate::cmd::{emit, open_engine, print_json};
use crate::config::Config;
use anyhow::Context;
use quarry_index::engine::snapshot::{self, SnapshotCollection};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Write a consistent copy of the data dir (catalog, indexes, quarry.toml) to a new folder,
    /// while servers and ingests go on using it. Writes wait only while the index files are
    /// linked; the folder appears whole or not at all.
    Create {
        /// The snapshot's folder; it must not exist (its parent is created).
        dir: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bring a snapshot back into --data-dir. Every file is checked against the snapshot's
    /// manifest (size and blake3) before the data dir changes. The data dir must be missing or
    /// empty, or --force given; either way no quarry process may be using it.
    Restore {
        /// A folder written by `quarry snapshot create` or `POST /v1/snapshots`.
        #[arg(value_name = "SNAPSHOT_DIR")]
        snapshot: PathBuf,
        /// Replace the content of a non-empty data dir (removed once the restored one is in
        /// place).
        #[arg(long)]
        force: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every file of a snapshot against its manifest, without restoring it.
    Verify {
        /// A folder written by `quarry snapshot create` or `POST /v1/snapshots`.
        #[arg(value_name = "SNAPSHOT_DIR")]
        snapshot: PathBuf,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn collections_text(o: &mut String, collections: &[SnapshotCollection]) {
    for c in collections {
        let _ = write!(
            o,
            "  {}: generation {} (BM25 index at {}",
            c.name, c.generation, c.bm25_generation
        );
        match c.vector_generation {
            Some(v) => {
                let _ = writeln!(o, ", vector dump at {v})");
            }
            None => {
                let _ = writeln!(o, ", no vectors)");
            }
        }
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b => format!("{:.1} KiB", b as f64 / 1024.0),
    }
}

pub(crate) fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    match args.action {
        Action::Create { dir, json } => {
            if !data_dir.join("catalog.sqlite3").is_file() {
                anyhow::bail!(
                    "data dir {} has no catalog: nothing to snapshot (check --data-dir)",
                    data_dir.display()
                );
            }
            let engine = open_engine(data_dir, config)?;
            let summary = engine
                .snapshot(&dir, None)
                .with_context(|| format!("cannot snapshot {}", data_dir.display()))?;
            if json {
                return print_json(&summary);
            }
            let mut o = format!(
                "snapshot of {} written to {}: {} files, {}, {:.1} s\n",
                data_dir.display(),
                summary.path.display(),
                summary.files,
                size(summary.bytes),
                summary.seconds
            );
            collections_text(&mut o, &summary.collections);
            emit(&o);
        }
        Action::Restore {
            snapshot: from,
            force,
            json,
        } => {
            let summary = snapshot::restore(&from, data_dir, force)
                .with_context(|| format!("cannot restore {}", from.display()))?;
            if json {
                return print_json(&summary);
            }
            let mut o = format!(
                "restored {} into {}{}: {} files, {}, {:.1} s\n",
                from.display(),
                data_dir.display(),
                if summary.replaced {
                    " (its previous content removed)"
                } else {
                    ""
                },
                summary.files,
                size(summary.bytes),
                summary.seconds
            );
            collections_text(&mut o, &summary.collections);
            o.push_str(
                "the indexes catch up with the catalog's generations when the data dir is first opened\n",
            );
            emit(&o);
        }
        Action::Verify {
            snapshot: from,
            json,
        } => {
            let manifest = snapshot::verify(&from)
                .with_context(|| format!("cannot verify {}", from.display()))?;
            if json {
                return print_json(&manifest);
            }
            let mut o = format!(
                "snapshot {} is intact: {} files, {}, written by quarry {} at {} (Unix time)\n",
                from.display(),
                manifest.files.len(),
                size(manifest.files.iter().map(|f| f.bytes).sum()),
                manifest.quarry_version,
                manifest.created_at
            );
            collections_text(&mut o, &manifest.collections);
            emit(&o);
        }
    }
    Ok(())
}

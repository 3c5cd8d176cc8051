//! `quarry status`

use super::{emit, open_engine, print_json};
use crate::config::Config;
use quarry_core::Principal;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub json: bool,
}

pub fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    let engine = open_engine(data_dir, config)?;
    let list = engine.list(&Principal::local_admin())?;
    if args.json {
        return print_json(
            &serde_json::json!({"data_dir": data_dir, "collections": list, "jobs": []}),
        );
    }
    let mut o = String::new();
    let _ = writeln!(o, "data dir: {}", data_dir.display());
    if list.is_empty() {
        o.push_str("no collections yet; add documents with `quarry ingest PATH`\n");
    }
    for c in &list {
        let _ = writeln!(
            o,
            "{}: {} documents, {} chunks, {} with vectors, generation {}, embedding version {}",
            c.name,
            c.documents,
            c.chunks,
            c.vectors.unwrap_or(0),
            c.generation,
            c.active_embedding_version
                .as_deref()
                .unwrap_or("none (BM25 only)")
        );
    }
    o.push_str("jobs: none running\n");
    emit(&o);
    Ok(())
}

//! `quarry status`

use super::{open_engine, print_json};
use crate::config::Config;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub json: bool,
}

pub fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    let engine = open_engine(data_dir, config)?;
    let list = engine.list()?;
    if args.json {
        return print_json(&serde_json::json!({"data_dir": data_dir, "collections": list, "jobs": []}));
    }
    println!("data dir: {}", data_dir.display());
    if list.is_empty() {
        println!("no collections yet; add documents with `quarry ingest PATH`");
    }
    for c in &list {
        println!(
            "{}: {} documents, {} chunks, generation {}, embedding version {}",
            c.name,
            c.documents,
            c.chunks,
            c.generation,
            c.active_embedding_version.as_deref().unwrap_or("none")
        );
    }
    println!("jobs: none running");
    Ok(())
}

//! `quarry status`: collections with their counts, from the data dir or from a running server
//! (`--server`, as the token's caller sees them).

use super::remote::ServerArgs;
use super::{emit, open_engine_to_read, print_json};
use crate::config::Config;
use quarry_core::Principal;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print the result as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    // Queued and running jobs (of the data dir; a server's are at GET /v1/jobs).
    let mut jobs: Vec<Value> = Vec::new();
    let (place, list) = match args.server.remote() {
        Some(server) => {
            let answer = server.get("/v1/collections")?;
            let list = answer["collections"].as_array().cloned().ok_or_else(|| {
                anyhow::anyhow!("unexpected answer from the server: no `collections` list")
            })?;
            (("server", Value::from(args.server.server.clone())), list)
        }
        None => {
            let engine = open_engine_to_read(data_dir, config)?;
            jobs = quarry_index::jobs::list(&engine, None)?
                .iter()
                .filter(|j| j.state.is_pending())
                .map(quarry_server::views::job)
                .collect();
            let list = engine.list(&Principal::local_admin())?;
            let list = list
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()?;
            (
                ("data_dir", Value::from(data_dir.display().to_string())),
                list,
            )
        }
    };
    if args.json {
        let mut out = serde_json::Map::new();
        out.insert(place.0.to_owned(), place.1);
        out.insert("collections".into(), Value::Array(list));
        out.insert("jobs".into(), Value::Array(jobs));
        return print_json(&out);
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}: {}",
        place.0.replace('_', " "),
        place.1.as_str().unwrap_or("")
    );
    if list.is_empty() {
        o.push_str("no collections yet; add documents with `quarry ingest PATH`\n");
    }
    for c in &list {
        // A server tells only admins how many chunks have vectors.
        let vectors = c["vectors"]
            .as_u64()
            .map_or(String::new(), |n| format!(", {n} with vectors"));
        // ...and only admins its generation.
        let generation = c["generation"]
            .as_u64()
            .map_or(String::new(), |g| format!(", generation {g}"));
        let _ = writeln!(
            o,
            "{}: {} documents, {} chunks{vectors}{generation}, embedding version {}",
            c["name"].as_str().unwrap_or("?"),
            c["documents"],
            c["chunks"],
            c["active_embedding_version"]
                .as_str()
                .unwrap_or("none (BM25 only)")
        );
    }
    if jobs.is_empty() {
        o.push_str("jobs: none queued or running\n");
    }
    for j in &jobs {
        let _ = writeln!(
            o,
            "job {} ({} of {}): {}, {} of {} chunks",
            j["id"].as_str().unwrap_or("?"),
            j["kind"].as_str().unwrap_or("?"),
            j["collection"].as_str().unwrap_or("?"),
            j["state"].as_str().unwrap_or("?"),
            j["processed"],
            j["total"]
        );
    }
    emit(&o);
    Ok(())
}

//! `quarry serve`

use super::open_engine;
use crate::config::Config;
use anyhow::Context;
use quarry_index::IngestOptions;
use quarry_server::{ServerOptions, router, serve, shutdown_signal};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on [default: server.addr = 127.0.0.1:7878]. Port 0 picks a free port.
    #[arg(long)]
    pub addr: Option<String>,
}

pub fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    let engine = Arc::new(open_engine(data_dir, config)?);
    let options = ServerOptions {
        body_limit_bytes: config.server.body_limit_bytes,
        request_timeout: Duration::from_millis(config.server.request_timeout_ms),
        default_top_k: config.query.top_k,
        default_mode: config.query.mode,
        default_group_by: config.query.group_by,
        ingest: IngestOptions {
            max_file_bytes: config.ingest.max_file_bytes,
            batch_docs: config.ingest.batch_docs,
            ..IngestOptions::default()
        },
        auth: quarry_server::Auth::off(),
    };
    let addr = args.addr.unwrap_or_else(|| config.server.addr.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}; is another server running there? pick one with --addr"))?;
        let bound = listener.local_addr()?;
        tracing::info!(addr = %bound, data_dir = %data_dir.display(), "quarry listening on http://{bound}");
        serve(listener, router(engine.clone(), options), shutdown_signal()).await?;
        // Write the vector graphs that changed, so the next start reloads them as they are.
        if let Err(e) = tokio::task::spawn_blocking(move || engine.flush()).await? {
            tracing::warn!(error = %e, "could not write vector indexes at shutdown; the next start replays them from stored vectors");
        }
        tracing::info!("quarry stopped");
        Ok(())
    })
}

//! `quarry serve`: the HTTP server, with the configured authentication. Without authentication it
//! listens on loopback addresses only, unless `--insecure-no-auth` says otherwise.

use super::{UsageError, engine_options, open_engine_with};
use crate::config::Config;
use anyhow::Context;
use quarry_index::IngestOptions;
use quarry_index::eval::DriftPolicy;
use quarry_server::{Auth, ServerOptions, router, serve, shutdown_signal};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on [default: server.addr = 127.0.0.1:7878]. Port 0 picks a free port.
    #[arg(long)]
    pub addr: Option<String>,
    /// Serve without authentication on a non-loopback address: anyone who reaches it is an admin.
    /// Without this flag, a server with no [[auth.api_keys]] or [auth.jwt] listens on loopback only.
    #[arg(long)]
    pub insecure_no_auth: bool,
}

pub(crate) fn run(data_dir: &Path, config: &Config, args: Args) -> anyhow::Result<()> {
    let auth = authenticator(config)?;
    if auth.is_on() && args.insecure_no_auth {
        tracing::warn!("--insecure-no-auth has no effect: authentication is configured");
    }
    // The catalog's check runs beside the collections' open; nothing is written or answered
    // before it passes, and a damaged catalog stops the server (below).
    let options = quarry_index::EngineOptions {
        defer_catalog_check: true,
        ..engine_options(config)
    };
    let engine = Arc::new(open_engine_with(data_dir, options)?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let grace = Duration::from_millis(config.server.shutdown_grace_ms);
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
        auth: auth.clone(),
        // set by the refresh loop once every collection is open
        ready: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        stopping: stop_rx,
        snapshot_dir: config.server.snapshot_dir.clone(),
        max_batch_queries: config.server.max_batch_queries,
        max_concurrent_queries: config.server.max_concurrent_queries,
    };
    let ready = options.ready.clone();
    let schedule = match config.eval.interval()? {
        Some(every) => Some((
            every,
            DriftPolicy {
                alert_drop: config.eval.alert_drop,
                window: config.eval.window,
                principal: config.eval.principal()?,
                top_k: config.eval.top_k,
            },
        )),
        None => None,
    };
    let canary_every = config.reindex.canary_interval()?;
    let addr = args.addr.unwrap_or_else(|| config.server.addr.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let out = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}; is another server running there? pick one with --addr"))?;
        let bound = listener.local_addr()?;
        // Checked on the bound address, whatever name `addr` used; nothing is accepted before.
        check_bind(&auth, bound, args.insecure_no_auth)?;
        tracing::info!("authentication: {}", describe(&auth, config, bound, args.insecure_no_auth));
        let jwks_reload = config
            .auth
            .jwt
            .as_ref()
            .and_then(|j| j.jwks_reload())
            .map(|(path, every)| tokio::spawn(reload_jwks(auth.clone(), path, every)));
        // The collections open (the refresh loop) while the catalog's check runs; everything
        // else waits for its verdict, and no connection is accepted before it (they wait in
        // the listen backlog). A damaged catalog stops the server.
        let refresh = tokio::spawn(quarry_server::refresh_loop(
            engine.clone(),
            ready,
            Duration::from_millis(250),
        ));
        // One future for the stop signal, from here on: its handler is in place before the
        // check ends, so a signal sent as soon as the address is logged is not lost.
        let mut shutdown = Box::pin(shutdown_signal());
        let e = engine.clone();
        let verdict = tokio::select! {
            verdict = tokio::task::spawn_blocking(move || e.catalog_checked()) => Some(verdict?),
            // a stop asked for during the check: nothing was written or answered yet
            () = &mut shutdown => None,
        };
        if !matches!(verdict, Some(Ok(()))) {
            refresh.abort();
            if let Some(task) = jwks_reload {
                task.abort();
            }
            return match verdict {
                Some(Err(e)) => Err(anyhow::Error::new(e).context("quarry stopped")),
                _ => {
                    tracing::info!("quarry stopped before the catalog's check ended");
                    Ok(())
                }
            };
        }
        if auth.is_on() {
            warn_documents_without_acl(&engine, config);
        }
        detect_model_changes(&engine, config.reindex.on_model_change);
        detect_chunking_changes(&engine, config);
        let jobs = tokio::spawn(quarry_server::job_loop(
            engine.clone(),
            Duration::from_millis(250),
        ));
        let canaries = canary_every.map(|every| {
            tokio::spawn(quarry_server::canary_loop(engine.clone(), every))
        });
        let scheduled = if let Some((every, policy)) = schedule {
            tracing::info!(
                "scheduled eval: every golden set every {}, alarm on an nDCG@10 drop over {} (best of the last {} runs)",
                humantime::format_duration(every),
                policy.alert_drop,
                policy.window
            );
            Some(tokio::spawn(quarry_server::eval_loop(engine.clone(), every, policy)))
        } else {
            None
        };
        // logged when connections are accepted (tests and scripts read the address from it)
        tracing::info!(addr = %bound, data_dir = %data_dir.display(), "quarry listening on http://{bound}");
        let stop = async move {
            shutdown.await;
            // writes not yet committing are cancelled at once
            let _ = stop_tx.send(true);
        };
        serve(listener, router(engine.clone(), options), stop, grace).await?;
        // No new scheduled pass starts; one already running finishes before the flush below
        // takes the writer lock.
        for task in scheduled.into_iter().chain(canaries).chain(jwks_reload) {
            task.abort();
        }
        refresh.abort();
        // A job in progress stops at its next batch, keeping what it stored; the next start
        // resumes it.
        engine.interrupt_jobs();
        jobs.abort();
        // Write the vector graphs that changed, so the next start reloads them as they are.
        if let Err(e) = tokio::task::spawn_blocking(move || engine.flush()).await? {
            tracing::warn!(error = %e, "could not write vector indexes at shutdown; the next start replays them from stored vectors");
        }
        tracing::info!("quarry stopped");
        anyhow::Ok(())
    });
    // Blocking work still running (a request past the grace period, or the collections' open
    // when the catalog was found damaged) is not waited for.
    runtime.shutdown_timeout(grace);
    out
}

/// With authentication on, documents without an ACL of their own follow `auth.default_acl`, which
/// is admins only unless set: turning authentication on then hides them from every other caller.
/// Says so once, with the counts and the fixes; with a `default_acl` that names someone, says who
/// reads them.
fn warn_documents_without_acl(engine: &quarry_index::Engine, config: &Config) {
    let counts = match engine.documents_without_acl() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot count documents without an ACL: {e}");
            return;
        }
    };
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return;
    }
    let per_collection = counts
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let acl = config.auth.default_acl();
    if acl.0.is_empty() {
        tracing::warn!(
            "{total} documents have no ACL of their own ({per_collection}); with authentication on they follow auth.default_acl,              which is admins only, so no reader or writer can see them. Set auth.default_acl in quarry.toml (e.g. [\"group:staff\"] or [\"public\"]),              or re-ingest them with an ACL (a .quarry-acl.toml file, `quarry ingest --acl`, or a record's `acl`)"
        );
    } else {
        tracing::info!(
            "{total} documents have no ACL of their own ({per_collection}); they follow auth.default_acl = [{}]",
            acl.0.join(", ")
        );
    }
}

/// Re-reads `auth.jwt.jwks_file` every `every` and, when its bytes changed, replaces the JWKS's
/// keys with it. A file that cannot be read or is not a usable key set leaves the keys in use,
/// with one warning per distinct problem.
async fn reload_jwks(auth: Auth, path: std::path::PathBuf, every: Duration) {
    let mut last = std::fs::read(&path).ok();
    let mut last_error: Option<String> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let file = path.clone();
        let read = tokio::task::spawn_blocking(move || crate::config::read_jwks(&file)).await;
        let result = match read {
            Ok(Ok(bytes)) if last.as_ref() == Some(&bytes) => continue,
            Ok(Ok(bytes)) => {
                let r = auth.reload_jwks(&bytes);
                last = Some(bytes);
                r.map_err(|e| format!("auth.jwt.jwks_file {}: {e}", path.display()))
            }
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(e) => Err(format!("JWKS reload task: {e}")),
        };
        match result {
            Ok(n) => {
                last_error = None;
                tracing::info!(
                    "auth.jwt.jwks_file {} reloaded: {n} keys; authentication: {}",
                    path.display(),
                    auth.describe()
                );
            }
            Err(e) if last_error.as_ref() != Some(&e) => {
                tracing::warn!("{e}; the keys in use stay");
                last_error = Some(e);
            }
            Err(_) => {}
        }
    }
}

/// Logs every collection chunked otherwise than `chunk.*` says now (those settings are for new
/// collections; a re-chunk is the user's decision) with the command that re-chunks it.
fn detect_chunking_changes(engine: &quarry_index::Engine, config: &Config) {
    // the rows alone: counting a collection's chunks and vectors (`Engine::list`) reads every
    // one of them, 9 of the 17 s a start took at 1M chunks
    let Ok(collections) = engine.collections() else {
        return;
    };
    for c in collections {
        if c.chunk_options != config.chunk {
            tracing::info!(
                "collection {} is chunked with {}; chunk.* now says {} (used for new collections). \
                 `quarry reindex --collection {} --chunking` re-chunks it",
                c.name,
                c.chunk_options,
                config.chunk,
                c.name
            );
        }
    }
}

/// Logs every collection whose embedder is now configured with another fingerprint than its
/// active version, and queues a re-index of it (`reindex.on_model_change = "auto"`) or says what
/// to run (`"manual"`). Vectors are never mixed: until a re-index is promoted, vector queries of
/// such a collection answer from BM25 (`degraded`).
fn detect_model_changes(engine: &quarry_index::Engine, policy: crate::config::OnModelChange) {
    let changes = match quarry_index::jobs::model_changes(engine) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot check for embedding-model changes: {e}");
            return;
        }
    };
    tracing::info!(
        "embedding versions checked against the configuration: {} changed",
        changes.len()
    );
    for c in changes {
        let what = format!(
            "collection {} is served by version {} (fingerprint {}), but embedder `{}` is now configured with fingerprint {}",
            c.collection,
            c.active_version,
            &c.active_fingerprint[..12],
            c.embedder,
            &c.configured_fingerprint[..12]
        );
        match policy {
            crate::config::OnModelChange::Auto => {
                match quarry_index::jobs::enqueue_reindex(engine, &c.collection, &c.embedder) {
                    Ok(job) => tracing::warn!(
                        "{what}; re-index job {} queued (reindex.on_model_change = \"auto\")",
                        job.id
                    ),
                    Err(e) => tracing::warn!("{what}; no re-index queued: {e}"),
                }
            }
            crate::config::OnModelChange::Manual => tracing::warn!(
                "{what}; run `quarry reindex --collection {} --embedder {}` to re-embed it (reindex.on_model_change = \"manual\")",
                c.collection,
                c.embedder
            ),
        }
    }
}

/// The authentication the configuration asks for, with its secrets read.
fn authenticator(config: &Config) -> anyhow::Result<Auth> {
    let (keys, jwt) = config
        .auth
        .resolve(|var| std::env::var(var).ok())
        .map_err(|e| UsageError(format!("{e:#}")))?;
    Auth::new(keys, jwt).map_err(|e| {
        let e = match config.auth.jwt.as_ref().and_then(|j| j.jwks_file.as_ref()) {
            Some(path) => e.replacen("JWKS:", &format!("jwks_file {}:", path.display()), 1),
            None => e,
        };
        UsageError(format!("auth.jwt: {e}")).into()
    })
}

/// Without authentication, only loopback addresses, unless the operator insists.
fn check_bind(auth: &Auth, bound: SocketAddr, insecure_no_auth: bool) -> anyhow::Result<()> {
    if auth.is_on() || insecure_no_auth || bound.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    Err(UsageError(format!(
        "refusing to serve {bound} without authentication: anyone who can reach it could read and change every document. \
         Configure [[auth.api_keys]] or [auth.jwt] in quarry.toml, listen on 127.0.0.1 (--addr 127.0.0.1:PORT), \
         or pass --insecure-no-auth if the network in front of quarry authenticates callers"
    ))
    .into())
}

/// The start-up line after `authentication: `.
fn describe(auth: &Auth, config: &Config, bound: SocketAddr, insecure_no_auth: bool) -> String {
    if !auth.is_on() {
        return if bound.ip().to_canonical().is_loopback() {
            "off (loopback only)".to_owned()
        } else if insecure_no_auth {
            format!("off (--insecure-no-auth: anyone who reaches {bound} is an admin)")
        } else {
            "off".to_owned()
        };
    }
    let acl = config.auth.default_acl();
    let default = if acl.0.is_empty() {
        "admins only".to_owned()
    } else {
        acl.0.join(", ")
    };
    format!("{}; documents without an ACL: {default}", auth.describe())
}

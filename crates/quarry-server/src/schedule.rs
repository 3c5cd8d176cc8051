//! Background work of the server: the job worker ([`job_loop`]) and scheduled evaluation
//! ([`eval_loop`]).
//!
//! Scheduled evaluation: with `eval.interval` set, the server runs every golden set of every
//! collection at start-up and then once per interval ([`Engine::scheduled_eval`]): each run is
//! recorded, shown on the `quarry_eval_*` gauges of `/metrics`, and checked for drift. A drift is
//! logged as a warning naming both runs, and raises `quarry_eval_drift_alert{collection}`.

use quarry_index::Engine;
use quarry_index::eval::DriftPolicy;
use std::sync::Arc;
use std::time::Duration;

/// Runs scheduled evaluation every `interval` until the runtime stops. A pass that is still
/// running when the next is due delays it instead of overlapping it.
pub async fn eval_loop(engine: Arc<Engine>, interval: Duration, policy: DriftPolicy) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (engine, policy) = (engine.clone(), policy.clone());
        match tokio::task::spawn_blocking(move || engine.scheduled_eval(&policy)).await {
            Ok(Ok(runs)) => {
                for r in runs {
                    match r.outcome {
                        Ok((run, drift)) => {
                            let ndcg: Vec<String> = run
                                .metrics
                                .iter()
                                .map(|(mode, m)| format!("{mode} {:.4}", m.ndcg10()))
                                .collect();
                            tracing::info!(
                                collection = %r.collection, golden = %r.golden, run = %run.id,
                                "scheduled eval: nDCG@10 {}", ndcg.join(", ")
                            );
                            for d in drift {
                                tracing::warn!(
                                    collection = %d.collection, golden = %d.golden, mode = %d.mode,
                                    run = %d.run, best_run = %d.best_run,
                                    "eval drift: {d}"
                                );
                            }
                        }
                        Err(e) => tracing::warn!(
                            collection = %r.collection, golden = %r.golden,
                            "scheduled eval could not run this golden set: {e}"
                        ),
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!("scheduled eval failed: {e}"),
            Err(e) => tracing::error!("scheduled eval task failed: {e}"),
        }
    }
}

/// Runs queued jobs (re-index) one at a time, oldest first, until the runtime stops; looks for
/// new ones every `poll`. A job left running by a process that died is resumed.
/// Opens every collection (recovering what a crash left behind), waits for the catalog's check,
/// then marks the server ready;
/// from then on follows what other processes commit to the data directory (a CLI ingest beside
/// the server) every `poll`, so queries see it within about `poll` of its commit.
pub async fn refresh_loop(
    engine: Arc<Engine>,
    ready: Arc<std::sync::atomic::AtomicBool>,
    poll: Duration,
) {
    loop {
        let e = engine.clone();
        match tokio::task::spawn_blocking(move || e.open_all()).await {
            Ok(Ok(())) => break,
            Ok(Err(e)) => tracing::error!("not ready: {e}; trying again in 5 s"),
            Err(e) => tracing::error!("opening collections failed: {e}; trying again in 5 s"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // A catalog checked beside the open (`EngineOptions::defer_catalog_check`) must pass first;
    // a damaged one stops the server (`quarry serve`), which never becomes ready.
    let e = engine.clone();
    match tokio::task::spawn_blocking(move || e.catalog_checked()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return tracing::error!("not ready: {e}"),
        Err(e) => return tracing::error!("the catalog check failed: {e}"),
    }
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    tracing::info!("every collection is open; ready");
    loop {
        tokio::time::sleep(poll).await;
        let e = engine.clone();
        match tokio::task::spawn_blocking(move || e.refresh()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("following other processes' writes: {e}"),
            Err(e) => tracing::error!("refresh task failed: {e}"),
        }
    }
}

pub async fn job_loop(engine: Arc<Engine>, poll: Duration) {
    loop {
        let e = engine.clone();
        match tokio::task::spawn_blocking(move || quarry_index::jobs::run_pending(&e)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("job worker: {e}"),
            Err(e) => tracing::error!("job worker task failed: {e}"),
        }
        tokio::time::sleep(poll).await;
    }
}

/// Re-embeds the canary set of every collection's active version every `interval` (at start-up
/// first) and logs what it finds; a drift is logged by the engine as a warning and set on the
/// `quarry_embedding_drift` gauge.
pub async fn canary_loop(engine: Arc<Engine>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let e = engine.clone();
        match tokio::task::spawn_blocking(move || quarry_index::jobs::check_canaries(&e)).await {
            Ok(Ok(reports)) => {
                for (collection, r) in reports {
                    match r {
                        Ok(Some(r)) if !r.drifted => tracing::debug!(
                            collection, version = %r.version,
                            "canary check: lowest cosine {:.6} over {} chunks", r.min_cosine, r.checked
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(collection, "canary check failed: {e}"),
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!("canary check failed: {e}"),
            Err(e) => tracing::error!("canary task failed: {e}"),
        }
    }
}

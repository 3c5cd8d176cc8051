//! Queries over HTTP as clients send them: prepared JSON bodies posted by 1 or more client
//! threads, each with its own keep-alive connection (a blocking `reqwest` client) and the caller's
//! API key, every query timed from send to the last byte of the answer.

use anyhow::{Context, bail};
use reqwest::blocking::Client;
use std::time::{Duration, Instant};

/// One caller of the query route.
pub(super) struct Caller<'a> {
    /// `http://HOST:PORT/v1/collections/C/query`.
    pub(super) query_url: &'a str,
    /// The caller's API key.
    pub(super) key: &'a str,
}

/// What a run of queries measured.
pub(super) struct Measured {
    /// Each query's latency, in milliseconds, in query order.
    pub(super) ms: Vec<f64>,
    /// Wall time of the whole run.
    pub(super) seconds: f64,
    /// Each query's hits (document ids, in rank order), when asked for.
    pub(super) hits: Vec<Vec<String>>,
}

/// A client with a keep-alive connection.
pub(super) fn client() -> anyhow::Result<Client> {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(1)
        .build()
        .context("cannot build an HTTP client")
}

/// One answered query.
struct Answered {
    index: usize,
    ms: f64,
    hits: Vec<String>,
}

/// Posts the bodies `t`, `t + threads`, … of `bodies` on one connection.
fn share(
    caller: &Caller<'_>,
    bodies: &[Vec<u8>],
    t: usize,
    threads: usize,
    keep_hits: bool,
) -> anyhow::Result<Vec<Answered>> {
    #[derive(serde::Deserialize)]
    struct Hit {
        doc_id: String,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        results: Vec<Hit>,
    }
    let client = client()?;
    let mut out = Vec::new();
    for index in (t..bodies.len()).step_by(threads) {
        let sent = Instant::now();
        let resp = client
            .post(caller.query_url)
            .bearer_auth(caller.key)
            .header("content-type", "application/json")
            .body(bodies[index].clone())
            .send()
            .context("query failed")?;
        let status = resp.status();
        let bytes = resp.bytes().context("query failed")?;
        let ms = sent.elapsed().as_secs_f64() * 1e3;
        if !status.is_success() {
            bail!(
                "the server answered {status} to a query: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let hits = if keep_hits {
            let a: Answer = serde_json::from_slice(&bytes)
                .context("the server's answer is not a query answer")?;
            a.results.into_iter().map(|h| h.doc_id).collect()
        } else {
            Vec::new()
        };
        out.push(Answered { index, ms, hits });
    }
    Ok(out)
}

/// Posts every body of `bodies` as `caller`, spread over `threads` client threads (query `i` by
/// thread `i % threads`). With `keep_hits`, each answer's document ids are kept.
pub(super) fn run(
    caller: &Caller<'_>,
    bodies: &[Vec<u8>],
    threads: usize,
    keep_hits: bool,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let shares: Vec<anyhow::Result<Vec<Answered>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| s.spawn(move || share(caller, bodies, t, threads, keep_hits)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked")))
            })
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut all = Vec::with_capacity(bodies.len());
    for r in shares {
        all.extend(r?);
    }
    all.sort_by_key(|a| a.index);
    let (ms, hits) = all.into_iter().map(|a| (a.ms, a.hits)).unzip();
    Ok(Measured { ms, seconds, hits })
}

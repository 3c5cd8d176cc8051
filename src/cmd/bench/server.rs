//! A `quarry serve` child process of the bench: started on a free loopback port (the bound
//! address read from its log, as `tests/it` does), probed until it answers a query, measured
//! (`VmRSS` and `VmHWM` from `/proc/<pid>/status`, counters from `/metrics`), and stopped with
//! SIGTERM like an operator would.

use anyhow::{Context, bail};
use reqwest::blocking::Client;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The server's log filter: its address line and warnings, not a line per request.
const LOG_FILTER: &str = "warn,quarry::cmd::serve=info";
/// Log lines kept to explain a server that failed.
const KEPT_LINES: usize = 40;
/// Longest wait for the server to listen, and then to answer.
const START_TIMEOUT: Duration = Duration::from_secs(900);

/// A running server.
pub(super) struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(super) url: String,
    log: Arc<Mutex<VecDeque<String>>>,
}

/// Memory of a process, in bytes.
pub(super) struct Memory {
    pub(super) rss: u64,
    pub(super) peak: u64,
}

impl Server {
    /// Starts `exe serve` on the data directory with the configuration file, and waits until it
    /// listens.
    pub(super) fn start(exe: &Path, data_dir: &Path, config: &Path) -> anyhow::Result<Server> {
        let mut child = Command::new(exe)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(config)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .env("QUARRY_LOG", LOG_FILTER)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {} serve", exe.display()))?;
        let stderr = child.stderr.take().context("the server's stderr")?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = log.clone();
        // Reads the log to its end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("http://") {
                    let url = line[i..].split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(url);
                }
                let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
                kept.push_back(line);
                if kept.len() > KEPT_LINES {
                    kept.pop_front();
                }
            }
        });
        let mut server = Server {
            child,
            url: String::new(),
            log,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(url) => server.url = url,
            Err(_) => bail!("the server did not start: {}", server.log_tail()),
        }
        Ok(server)
    }

    /// The last lines of the server's log, for an error message.
    fn log_tail(&self) -> String {
        let kept = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let lines: Vec<&str> = kept.iter().map(String::as_str).collect();
        if lines.is_empty() {
            "it wrote nothing".into()
        } else {
            format!("its log ends with:\n{}", lines.join("\n"))
        }
    }

    /// Sends the query `body` as the caller `key` until the server answers it with at least one
    /// hit (a server still opening its collections may fail or find nothing).
    pub(super) fn wait_for_answer(
        &mut self,
        client: &Client,
        query_url: &str,
        key: &str,
        body: &[u8],
    ) -> anyhow::Result<()> {
        #[derive(serde::Deserialize)]
        struct Answer {
            results: Vec<serde_json::Value>,
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited ({status}): {}", self.log_tail());
            }
            let answer = client
                .post(query_url)
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(body.to_vec())
                .send()
                .ok()
                .filter(|r| r.status().is_success())
                .and_then(|r| r.json::<Answer>().ok());
            if answer.is_some_and(|a| !a.results.is_empty()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the server did not answer a query in {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The server's resident memory now and at its peak (Linux: `/proc/<pid>/status`).
    pub(super) fn memory(&self) -> anyhow::Result<Memory> {
        memory_of(self.child.id())
    }

    /// The sum of a counter family in `/metrics` (every labelled series of `name`).
    pub(super) fn counter(&self, client: &Client, name: &str) -> anyhow::Result<f64> {
        let text = client
            .get(format!("{}/metrics", self.url))
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.text())
            .context("cannot read the server's /metrics")?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Stops the server with SIGTERM and waits for it to exit (killing it after a minute).
    pub(super) fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                bail!("the server did not stop within a minute of SIGTERM; killed it");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// A server left running by an error is killed.
impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Process `pid`'s resident memory now and at its peak (Linux: `/proc/<pid>/status`).
pub(super) fn memory_of(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {path} (the bench measures memory on Linux)"))?;
    let kib = |key: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("{path} has no {key}"))?;
        let n = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("{path}: cannot read {line:?}"))?;
        Ok(n * 1024)
    };
    Ok(Memory {
        rss: kib("VmRSS:")?,
        peak: kib("VmHWM:")?,
    })
}

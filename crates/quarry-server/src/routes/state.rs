//! The state every handler shares: the engine, the server settings ([`ServerOptions`]) and the
//! writes running as tasks, as one [`AppState`] behind an `Arc` ([`Shared`]).

use super::task_table::Tasks;
use crate::auth::Auth;
use quarry_core::{GroupBy, Mode};
use quarry_index::{Engine, IngestOptions};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Server settings (`[server]` and `[query]` in `quarry.toml`).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    pub default_top_k: usize,
    pub default_mode: Mode,
    pub default_group_by: GroupBy,
    /// Ingest settings for the documents API (its `collection` is taken from the route).
    pub ingest: IngestOptions,
    /// Who may call `/v1` (off by default: every caller is the local admin).
    pub auth: Auth,
    /// What `/readyz` says: set once every collection is open ([`crate::refresh_loop`]).
    pub ready: Arc<AtomicBool>,
    /// Turns true when the server starts stopping: writes not yet committing are cancelled.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Where `POST /v1/snapshots` writes (`server.snapshot_dir`); `None`: `<data-dir>-snapshots`
    /// beside the data directory.
    pub snapshot_dir: Option<std::path::PathBuf>,
    /// Most queries in one `POST /v1/collections/{c}/query/batch` (`server.max_batch_queries`).
    pub max_batch_queries: usize,
    /// Most searches (a query or a batch) running at once (`server.max_concurrent_queries`, at
    /// least 1); more wait for a slot within the request timeout.
    pub max_concurrent_queries: usize,
}

/// The default `server.max_concurrent_queries`: two per core, so that a search waiting on a
/// disk read leaves its core to another while a flood of queries cannot share the cores ever
/// more thinly (and every request past the bound waits without holding a thread).
pub fn default_concurrent_queries() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            body_limit_bytes: 8 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            default_top_k: 10,
            default_mode: Mode::Hybrid,
            default_group_by: GroupBy::Chunk,
            ingest: IngestOptions::default(),
            auth: Auth::off(),
            ready: Arc::new(AtomicBool::new(true)),
            stopping: tokio::sync::watch::channel(false).1,
            snapshot_dir: None,
            max_batch_queries: 32,
            max_concurrent_queries: default_concurrent_queries(),
        }
    }
}

/// State shared by all handlers.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub options: ServerOptions,
    /// Writes sent with `wait=false`.
    pub(crate) tasks: Tasks,
    /// The `server.max_concurrent_queries` slots searches take ([`super::common::search_work`]).
    pub(crate) search_slots: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub(crate) fn new(engine: Arc<Engine>, options: ServerOptions) -> Self {
        AppState {
            engine,
            // at least one: with none, every search would wait for its 504
            search_slots: Arc::new(tokio::sync::Semaphore::new(
                options.max_concurrent_queries.max(1),
            )),
            options,
            tasks: Tasks::default(),
        }
    }
}

/// The state as handlers take it (`State<Shared>`).
pub(crate) type Shared = Arc<AppState>;

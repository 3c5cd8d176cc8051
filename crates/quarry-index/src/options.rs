//! [`EngineOptions`]: the settings the engine takes from configuration (chunking and the embedder
//! of new collections, vector index parameters, query defaults and the reranker, re-index policy,
//! read-only).
//! The engine holds them; a [`crate::Searcher`] takes its query defaults from them.

use crate::collection::EmbedderSource;
use crate::vectors::VectorParams;
use quarry_core::{Bm25Params, ChunkOptions, Fusion, Reranker};
use std::sync::Arc;
use std::time::Duration;

/// Settings the engine needs from configuration.
#[derive(Clone)]
pub struct EngineOptions {
    /// Chunking of collections created from now on.
    pub chunk: ChunkOptions,
    /// BM25 scoring of collections created from now on (`[bm25]`).
    pub bm25: Bm25Params,
    /// Embedder of collections created from now on (a name `embedders` resolves).
    pub embedder: String,
    /// Resolves embedder names; `None`: collections get no vectors (BM25 only).
    pub embedders: Option<Arc<dyn EmbedderSource>>,
    pub vector: VectorParams,
    /// Texts per embedding call during ingest.
    pub embed_batch: usize,
    /// How long a query waits for its embedding before answering from BM25 alone.
    pub query_embed_timeout: Duration,
    /// Query vectors the engine keeps, by embedding version and query text, so a repeated query
    /// is not embedded again (`query.embed_cache_entries`; 0: no cache).
    pub query_embed_cache_entries: usize,
    /// Fusion used when a query does not name one.
    pub fusion: Fusion,
    /// Re-scores a query's first hits when it asks (`rerank`); `None`: such a query is refused.
    pub reranker: Option<Arc<dyn Reranker>>,
    /// Dump a vector graph once this many of its points changed since the last dump.
    pub dump_every_points: usize,
    /// Who reads documents without an ACL of their own (`auth.default_acl`): everyone without
    /// authentication, admins only with it.
    pub default_acl: quarry_core::DefaultAcl,
    /// A re-index is promoted only if its nDCG@10 on every golden set is at least the active
    /// version's minus this (`reindex.max_ndcg_drop`).
    pub reindex_max_ndcg_drop: f64,
    /// A canary check below this lowest cosine means the embedder's model changed
    /// (`reindex.canary_min_cosine`).
    pub canary_min_cosine: f64,
    /// Versions kept with an index after a switch: the active one and the `keep_versions - 1`
    /// that served most recently (`reindex.keep_versions`; 0 keeps all).
    pub keep_versions: usize,
    /// Open without writing anything to the data directory (a read-only directory or file
    /// system: `quarry status` and `quarry query` on a mounted backup). Reads work, recovering
    /// vectors in memory; what needs a write (ingest, a BM25 index behind the catalog or damaged,
    /// a catalog of an older schema) is an [`Error::ReadOnly`](crate::Error::ReadOnly) saying so.
    pub read_only: bool,
    /// Open the catalog without SQLite's `quick_check` and run the check on a thread of its own
    /// (a server: the check reads every page of the catalog, seconds at a million chunks, while
    /// the collections' indexes open). What takes the writer lock, queries' snapshots
    /// ([`crate::Engine::searcher`]), [`crate::Engine::refresh`] and the job runner wait for its
    /// verdict ([`crate::Engine::catalog_checked`], blocking: async callers use a blocking task)
    /// and fail with it when the catalog is damaged; a verdict that could not be reached stays
    /// for this engine (open it again). Other reads, and the few catalog writes outside the
    /// writer lock (golden sets, queueing and cancelling jobs), do not wait: a caller that
    /// defers the check waits for the verdict before it serves them, as `quarry serve` does.
    /// Ignored by a read-only engine, which checks at open.
    pub defer_catalog_check: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            chunk: ChunkOptions::default(),
            bm25: Bm25Params::default(),
            embedder: "none".into(),
            embedders: None,
            vector: VectorParams::default(),
            embed_batch: 256,
            query_embed_timeout: Duration::from_millis(2000),
            query_embed_cache_entries: 10_000,
            fusion: Fusion::default(),
            reranker: None,
            dump_every_points: 2048,
            default_acl: quarry_core::DefaultAcl::public(),
            reindex_max_ndcg_drop: 0.01,
            canary_min_cosine: 0.99,
            keep_versions: 2,
            read_only: false,
            defer_catalog_check: false,
        }
    }
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("chunk", &self.chunk)
            .field("bm25", &self.bm25)
            .field("embedder", &self.embedder)
            .field("vector", &self.vector)
            .field("embed_batch", &self.embed_batch)
            .field("query_embed_timeout", &self.query_embed_timeout)
            .field("query_embed_cache_entries", &self.query_embed_cache_entries)
            .field("fusion", &self.fusion)
            .field("reranker", &self.reranker.is_some())
            .finish_non_exhaustive()
    }
}

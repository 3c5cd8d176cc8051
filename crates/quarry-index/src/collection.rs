//! A collection's derived indexes as this process holds them: `Indexes` (its BM25 index, the
//! vector index of its active version and the lock that publishes both together) and the
//! [`ActiveEmbedder`] queries are embedded with; the settings a new collection is created with
//! ([`CollectionSettings`]) and the [`EmbedderSource`] that resolves embedder names. The engine
//! opens and writes these; a [`crate::Searcher`] reads them.

use crate::bm25::Bm25Index;
use crate::catalog::VersionRow;
use crate::error::Result;
use crate::vectors::VectorIndex;
use quarry_core::{Bm25Params, ChunkOptions, Embedder};
use std::sync::{Arc, RwLock};

/// Resolves embedder names (`[embedders.NAME]`) to embedders, loading them on first use.
pub trait EmbedderSource: Send + Sync {
    /// The embedder called `name`, or `None` when the name means "no vectors" (`none`).
    fn get(&self, name: &str) -> Result<Option<Arc<dyn Embedder>>>;
}

/// The embedder of a collection's active version, checked against the version's fingerprint.
#[derive(Clone)]
pub struct ActiveEmbedder {
    pub version: VersionRow,
    /// `Err` when the configured embedder of that name cannot be loaded or no longer has the
    /// version's fingerprint; the message says why. Queries then answer from BM25 alone.
    pub embedder: std::result::Result<Arc<dyn Embedder>, String>,
}

/// The derived indexes of one collection, and the lock that publishes them together.
pub(crate) struct Indexes {
    pub(crate) bm25: Arc<Bm25Index>,
    pub(crate) vectors: Option<Arc<VectorIndex>>,
    pub(crate) active: Option<ActiveEmbedder>,
    /// Shared by every `Indexes` of the collection over the same BM25 index (a version switch).
    pub(crate) publish: Arc<RwLock<()>>,
    /// The `incarnation` of the collection these indexes belong to: a collection deleted and
    /// created again by another process has another, and its cached indexes are dropped.
    pub(crate) incarnation: String,
}

impl Indexes {
    /// These indexes with another vector index (reloaded or rebuilt), not yet published.
    pub(crate) fn with_vectors(&self, vectors: VectorIndex) -> Indexes {
        Indexes {
            bm25: self.bm25.clone(),
            vectors: Some(Arc::new(vectors)),
            active: self.active.clone(),
            publish: self.publish.clone(),
            incarnation: self.incarnation.clone(),
        }
    }

    /// Makes the committed BM25 and vector state visible to new searchers, together.
    pub(crate) fn publish(&self) -> Result<()> {
        let _guard = self.publish.write().unwrap_or_else(|p| p.into_inner());
        self.bm25.reload()?;
        if let Some(v) = &self.vectors {
            v.publish();
        }
        Ok(())
    }
}

/// Settings of a new collection (`PUT /v1/collections/{c}`, `quarry collections create`): what
/// is not given is the configured default.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionSettings {
    /// How its documents are chunked ([`ChunkOptions`]; missing keys take their defaults).
    pub chunk: Option<ChunkOptions>,
    /// How BM25 scores its chunks ([`Bm25Params`]; missing keys take their defaults).
    pub bm25: Option<Bm25Params>,
    /// The embedder of its first embedding version (`none`: BM25 only).
    pub embedder: Option<String>,
}

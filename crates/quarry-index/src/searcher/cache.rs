//! The query-embedding cache: the vectors of recently embedded query texts, kept in memory by one
//! [`Engine`](crate::Engine) and shared by every [`Searcher`](super::Searcher) it hands out (a
//! searcher is a per-request snapshot), so a repeated query does not run the model again.
//!
//! An entry is keyed by the embedding version and the query text: a vector is only ever compared
//! with the vectors of the version that made it, and after a switch to another version (a
//! re-index, a rollback) the old version's entries are never answered for the new one. They
//! age out of the LRU. Only checked, successful embeddings are stored; a failure or a timeout
//! (the degraded answer) is never cached. Every lookup counts as a hit or a miss in
//! `quarry_query_embed_cache_total`.
//!
//! The LRU itself is the `lru` crate's. The key is a blake3 digest of (version, text) rather than
//! the text: an entry then takes a fixed 32 bytes beside its vector however long the query
//! (texts may be 64 KiB; 10,000 of them would be 640 MiB), and a collision of 256-bit digests
//! does not happen in practice.

use crate::telemetry::Telemetry;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

type Key = [u8; 32];

/// Query vectors by (embedding version id, query text), least recently used out first.
pub(crate) struct QueryVectorCache {
    /// `None`: the cache is off (`query.embed_cache_entries = 0`).
    entries: Option<Mutex<LruCache<Key, Arc<[f32]>>>>,
    telemetry: Arc<Telemetry>,
}

impl QueryVectorCache {
    /// A cache of at most `capacity` vectors (0: off), counting into `telemetry`.
    pub(crate) fn new(capacity: usize, telemetry: Arc<Telemetry>) -> Self {
        QueryVectorCache {
            entries: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
            telemetry,
        }
    }

    fn key(version: &str, text: &str) -> Key {
        let mut h = blake3::Hasher::new();
        // the version's length first, so ("ab", "c") and ("a", "bc") differ
        h.update(&(version.len() as u64).to_le_bytes());
        h.update(version.as_bytes());
        h.update(text.as_bytes());
        *h.finalize().as_bytes()
    }

    /// The vector of `text` under `version`, if cached; counted as a hit or a miss (nothing is
    /// counted while the cache is off).
    pub(crate) fn get(&self, version: &str, text: &str) -> Option<Vec<f32>> {
        let entries = self.entries.as_ref()?;
        let found = entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&Self::key(version, text))
            .map(|v| v.to_vec());
        self.telemetry.observe_query_embed_cache(found.is_some());
        found
    }

    /// Stores the vector `text` embedded to under `version` (a successful embedding only).
    pub(crate) fn put(&self, version: &str, text: &str, vector: &[f32]) {
        if let Some(entries) = &self.entries {
            entries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .put(Self::key(version, text), vector.into());
        }
    }

    /// Vectors held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
            .as_ref()
            .map_or(0, |e| e.lock().unwrap_or_else(|p| p.into_inner()).len())
    }
}

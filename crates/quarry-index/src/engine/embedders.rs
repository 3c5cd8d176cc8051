//! Embedders of collections: resolving a name to an embedder (metered in the telemetry), the
//! active embedder of a collection checked against its version's fingerprint, and the chunker
//! sized by an embedder's tokenizer.

use super::state::Engine;
use crate::catalog::VersionRow;
use crate::collection::ActiveEmbedder;
use crate::error::Result;
use quarry_core::embed::{Mismatch, matching};
use quarry_core::{ChunkOptions, Embedder};
use std::sync::Arc;

impl Engine {
    /// The embedder called `name`, or `None` for `none` or an engine without embedders. Its
    /// calls are recorded in the engine's telemetry.
    pub(crate) fn resolve(&self, name: &str) -> Result<Option<Arc<dyn Embedder>>> {
        match &self.options.embedders {
            Some(src) if name != "none" => {
                Ok(src.get(name)?.map(|e| self.telemetry.meter(name, e)))
            }
            _ => Ok(None),
        }
    }

    /// The configured embedder of `version`'s name, if it still computes that version's vectors
    /// (the same fingerprint): the one place a stored version meets its embedder
    /// ([`quarry_core::embed::matching`]). Callers word the [`Mismatch`] for their case.
    pub(crate) fn embedder_of(
        &self,
        version: &VersionRow,
    ) -> Result<std::result::Result<Arc<dyn Embedder>, Mismatch>> {
        Ok(matching(
            self.resolve(&version.embedder)?,
            &version.fingerprint,
        ))
    }

    /// The embedder of the engine's default, for chunk sizing of new collections (`None` when
    /// vectors are off).
    pub fn default_embedder(&self) -> Result<Option<Arc<dyn Embedder>>> {
        self.resolve(&self.options.embedder)
    }

    /// The active embedder of a collection whose active version is `active_id`, resolved and
    /// checked against the version's fingerprint.
    pub(super) fn active_embedder(
        &self,
        collection: &str,
        active_id: &str,
    ) -> Result<Option<ActiveEmbedder>> {
        // (its own statement: the catalog guard is released before `resolve`)
        let version = self.catalog().version(collection, active_id)?;
        let Some(version) = version else {
            return Ok(None);
        };
        let embedder = match self.embedder_of(&version) {
            Ok(Ok(e)) => Ok(e),
            Ok(Err(Mismatch::Changed(e))) => Err(format!(
                "embedder `{}` is now configured as {} (fingerprint {}), but collection `{collection}` \
                 holds vectors of fingerprint {}; restore the embedder's previous settings, or give \
                 the new settings another name",
                version.embedder,
                e.spec().model,
                e.fingerprint().short(),
                version.fingerprint.short()
            )),
            Ok(Err(Mismatch::Missing)) => Err(format!(
                "embedder `{}` of collection `{collection}` is not configured; add [embedders.{}] \
                 with the settings it was created with",
                version.embedder, version.embedder
            )),
            Err(e) => Err(e.to_string()),
        };
        Ok(Some(ActiveEmbedder { version, embedder }))
    }

    /// The chunker a collection's documents are split with: its options, sized by its embedder's
    /// tokenizer when it has one.
    pub fn chunker(&self, collection: &str) -> Result<quarry_core::Chunker> {
        self.chunker_with(collection, self.chunk_options(collection)?)
    }

    /// The chunker of `collection` with other `options` (a re-chunk), sized like
    /// [`Engine::chunker`].
    pub(crate) fn chunker_with(
        &self,
        collection: &str,
        options: ChunkOptions,
    ) -> Result<quarry_core::Chunker> {
        // One catalog lock at a time: a guard in a `match` scrutinee lives through the arms.
        let version = self.catalog().active_version(collection)?;
        let exists = self.collection_row(collection)?.is_some();
        let embedder = match version {
            Some(v) => self.resolve(&v.embedder).ok().flatten(),
            None if !exists => self.default_embedder()?,
            None => None,
        };
        let counter = embedder.and_then(|e| {
            e.count_tokens("").map(|_| {
                let e = e.clone();
                Arc::new(move |s: &str| e.count_tokens(s).unwrap_or(s.len() / 4))
                    as quarry_core::TokenCounter
            })
        });
        Ok(quarry_core::Chunker::new(options, counter)?)
    }
}

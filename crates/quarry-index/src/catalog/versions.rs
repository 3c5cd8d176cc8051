//! Embedding versions of a collection (which embedder, by name and spec, made its vectors; their
//! state and activation order), switching the active one in one transaction, and each version's
//! canary set.

use super::schema::{Catalog, now};
use super::states::VersionState;
use super::vectors::{decode_vector, encode_vector};
use crate::error::{Error, Result};
use crate::vectors::IndexParams;
use quarry_core::{EmbedderSpec, Fingerprint};
use rusqlite::params;

/// An embedding version of a collection: which embedder (by config name and spec) made its vectors.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VersionRow {
    pub id: String,
    pub collection: String,
    pub embedder: String,
    pub fingerprint: Fingerprint,
    pub spec: EmbedderSpec,
    pub state: VersionState,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    /// Higher for a version made active more recently (0: never active since schema 4).
    pub activation_seq: i64,
    /// What the version's index sets apart from `[vector]` (a requantize changes it).
    pub index: IndexParams,
    /// The folder of its index under `vectors/` when not the version id (a requantize builds
    /// the index anew in another folder).
    #[serde(skip)]
    pub index_folder: Option<String>,
}

impl VersionRow {
    /// The folder of the version's vector index under the collection's `vectors/`.
    pub fn folder(&self) -> &str {
        self.index_folder.as_deref().unwrap_or(&self.id)
    }
}

/// Version ids: the embedder's name and the first 12 hex digits of its fingerprint.
pub fn version_id(embedder: &str, fingerprint: &Fingerprint) -> String {
    format!("{embedder}-{}", fingerprint.short())
}

impl Catalog {
    /// The active embedding version of a collection, if it has one.
    pub(crate) fn active_version(&self, collection: &str) -> Result<Option<VersionRow>> {
        let Some(id) = self.collection(collection)?.and_then(|c| c.active_version) else {
            return Ok(None);
        };
        self.version(collection, &id)
    }

    pub(crate) fn version(&self, collection: &str, id: &str) -> Result<Option<VersionRow>> {
        Ok(self
            .versions_where(collection, Some(id))?
            .into_iter()
            .next())
    }

    /// Every embedding version of a collection, oldest first.
    pub(crate) fn versions(&self, collection: &str) -> Result<Vec<VersionRow>> {
        self.versions_where(collection, None)
    }

    fn versions_where(&self, collection: &str, id: Option<&str>) -> Result<Vec<VersionRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, embedder, fingerprint, spec, state, created_at, activated_at, activation_seq,
             index_params, index_folder FROM embedding_versions
             WHERE collection = ?1 AND (?2 IS NULL OR id = ?2) ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map(params![collection, id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, Option<String>>(9)?,
            ))
        })?;
        rows.map(|row| {
            let (
                id,
                embedder,
                fp,
                spec,
                state,
                created_at,
                activated_at,
                activation_seq,
                index,
                index_folder,
            ) = row?;
            Ok(VersionRow {
                index: serde_json::from_str(&index)
                    .map_err(|e| Error::Corrupt(format!("index params of version {id}: {e}")))?,
                index_folder,
                fingerprint: Fingerprint::from_hex(&fp)
                    .ok_or_else(|| Error::Corrupt(format!("bad fingerprint {fp:?}")))?,
                spec: serde_json::from_str(&spec)
                    .map_err(|e| Error::Corrupt(format!("embedder spec of version {id}: {e}")))?,
                id,
                collection: collection.to_owned(),
                embedder,
                state: state.parse()?,
                created_at,
                activated_at,
                activation_seq,
            })
        })
        .collect()
    }

    /// Creates the version of `embedder` (with `spec`) for the collection and makes it active.
    pub(crate) fn create_active_version(
        &self,
        collection: &str,
        embedder: &str,
        spec: &EmbedderSpec,
    ) -> Result<VersionRow> {
        let fp = spec.fingerprint();
        let id = version_id(embedder, &fp);
        self.conn.execute(
            "INSERT OR IGNORE INTO embedding_versions (collection, id, embedder, fingerprint, spec, state, created_at, activated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?6)",
            params![collection, id, embedder, fp.to_hex(), spec.canonical(), now()],
        )?;
        self.conn.execute(
            "UPDATE collections SET active_version = ?2 WHERE name = ?1",
            params![collection, id],
        )?;
        self.version(collection, &id)?
            .ok_or_else(|| Error::Corrupt(format!("version {id} vanished")))
    }

    /// Creates (or brings back to `building`) the version of `embedder` with `spec`.
    pub(crate) fn building_version(
        &self,
        collection: &str,
        embedder: &str,
        spec: &EmbedderSpec,
    ) -> Result<VersionRow> {
        let fp = spec.fingerprint();
        let id = version_id(embedder, &fp);
        self.conn.execute(
            "INSERT INTO embedding_versions (collection, id, embedder, fingerprint, spec, state, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'building', ?6)
             ON CONFLICT (collection, id) DO UPDATE SET state = 'building' WHERE state != 'active'",
            params![collection, id, embedder, fp.to_hex(), spec.canonical(), now()],
        )?;
        self.version(collection, &id)?
            .ok_or_else(|| Error::Corrupt(format!("version {id} vanished")))
    }

    /// Switches version `id` to the index `params` built in `folder` (a requantize's end).
    pub(crate) fn set_version_index(
        &self,
        collection: &str,
        id: &str,
        params: &IndexParams,
        folder: &str,
    ) -> Result<()> {
        let json = serde_json::to_string(params)
            .map_err(|e| Error::Corrupt(format!("index params: {e}")))?;
        self.conn.execute(
            "UPDATE embedding_versions SET index_params = ?3, index_folder = ?4 WHERE collection = ?1 AND id = ?2",
            params![collection, id, json, folder],
        )?;
        Ok(())
    }

    pub(crate) fn set_version_state(
        &self,
        collection: &str,
        id: &str,
        state: VersionState,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE embedding_versions SET state = ?3 WHERE collection = ?1 AND id = ?2",
            params![collection, id, state],
        )?;
        Ok(())
    }

    /// Makes version `id` the collection's active one, in one transaction; the version active
    /// before becomes `ready` (kept for rollback).
    pub(crate) fn activate_version(&mut self, collection: &str, id: &str) -> Result<()> {
        let t = now();
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE embedding_versions SET state = 'ready' WHERE collection = ?1 AND state = 'active' AND id != ?2",
            params![collection, id],
        )?;
        tx.execute(
            "UPDATE embedding_versions SET state = 'active', activated_at = ?3,
               activation_seq = (SELECT MAX(activation_seq) FROM embedding_versions WHERE collection = ?1) + 1
             WHERE collection = ?1 AND id = ?2",
            params![collection, id, t],
        )?;
        tx.execute(
            "UPDATE collections SET active_version = ?2 WHERE name = ?1",
            params![collection, id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Stores the canary set of version `version`: `(chunk hash, text as embedded, vector)`.
    pub(crate) fn put_canaries(
        &mut self,
        collection: &str,
        version: &str,
        rows: &[(quarry_core::ContentHash, String, Vec<f32>)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM canaries WHERE collection = ?1 AND version = ?2",
            params![collection, version],
        )?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO canaries (collection, version, chunk_hash, text, vector) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (h, text, v) in rows {
                stmt.execute(params![
                    collection,
                    version,
                    h.to_hex(),
                    text,
                    encode_vector(v)
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The canary set of a version: `(text as embedded, vector stored at capture)`.
    pub(crate) fn canaries(
        &self,
        collection: &str,
        version: &str,
    ) -> Result<Vec<(String, Vec<f32>)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT text, vector FROM canaries WHERE collection = ?1 AND version = ?2 ORDER BY chunk_hash",
        )?;
        let rows = stmt.query_map(params![collection, version], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        rows.map(|r| {
            let (text, blob) = r?;
            Ok((text, decode_vector(&blob)?))
        })
        .collect()
    }
}

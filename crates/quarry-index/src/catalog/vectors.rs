//! The embedding cache: vectors stored by embedder fingerprint and chunk hash, shared by every
//! collection and version with that fingerprint, as little-endian `f32` blobs.

use super::schema::{Catalog, parse_hash};
use crate::error::{Error, Result};
use quarry_core::{ContentHash, Fingerprint};
use rusqlite::params;
use std::collections::HashMap;

/// Stores vectors of `fingerprint` in `tx`, replacing any stored for the same chunk.
pub(super) fn insert_vectors(
    tx: &rusqlite::Transaction<'_>,
    fingerprint: &Fingerprint,
    vectors: &[(ContentHash, Vec<f32>)],
) -> Result<()> {
    let fp = fingerprint.to_hex();
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO embeddings (fingerprint, chunk_hash, vector) VALUES (?1, ?2, ?3)",
    )?;
    for (h, v) in vectors {
        stmt.execute(params![fp, h.to_hex(), encode_vector(v)])?;
    }
    Ok(())
}

pub(super) fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn decode_vector(b: &[u8]) -> Result<Vec<f32>> {
    if !b.len().is_multiple_of(4) {
        return Err(Error::Corrupt(format!(
            "stored vector of {} bytes is not a list of f32",
            b.len()
        )));
    }
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

impl Catalog {
    /// Chunks of the collection that have a stored vector of `fingerprint`.
    pub(crate) fn count_vectors(&self, collection: &str, fingerprint: &Fingerprint) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM chunks c JOIN embeddings e
             ON e.fingerprint = ?2 AND e.chunk_hash = c.chunk_hash WHERE c.collection = ?1",
            params![collection, fingerprint.to_hex()],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Stored vectors of `fingerprint` for those of `hashes` that have one.
    pub(crate) fn vectors(
        &self,
        fingerprint: &Fingerprint,
        hashes: &[ContentHash],
    ) -> Result<HashMap<ContentHash, Vec<f32>>> {
        let mut out = HashMap::with_capacity(hashes.len());
        self.lookup(
            "SELECT chunk_hash, vector FROM embeddings WHERE fingerprint = ? AND chunk_hash IN (",
            &fingerprint.to_hex(),
            hashes,
            |r| {
                let h: String = r.get(0)?;
                let b: Vec<u8> = r.get(1)?;
                out.insert(parse_hash(&h)?, decode_vector(&b)?);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Which of `hashes` have a stored vector of `fingerprint`.
    pub(crate) fn have_vectors(
        &self,
        fingerprint: &Fingerprint,
        hashes: &[ContentHash],
    ) -> Result<std::collections::HashSet<ContentHash>> {
        let mut out = std::collections::HashSet::with_capacity(hashes.len());
        self.lookup(
            "SELECT chunk_hash FROM embeddings WHERE fingerprint = ? AND chunk_hash IN (",
            &fingerprint.to_hex(),
            hashes,
            |r| {
                out.insert(parse_hash(&r.get::<_, String>(0)?)?);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Stores vectors of `fingerprint` (replacing any stored for the same chunk), in one
    /// transaction.
    pub(crate) fn put_vectors(
        &mut self,
        fingerprint: &Fingerprint,
        vectors: &[(ContentHash, Vec<f32>)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        insert_vectors(&tx, fingerprint, vectors)?;
        tx.commit()?;
        Ok(())
    }
}

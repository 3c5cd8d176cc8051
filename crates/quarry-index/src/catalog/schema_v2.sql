-- Schema version 2: stored vectors (the embedding cache), chunk titles, embedding versions per
-- collection.

-- Every vector quarry has computed or loaded, keyed by the embedder fingerprint and the chunk hash
-- (blake3 of the text as embedded). Shared by all collections: the same text under the same model
-- is embedded once. The vector indexes are derived from this table.
CREATE TABLE embeddings (
    fingerprint  TEXT NOT NULL,
    chunk_hash   TEXT NOT NULL,
    vector       BLOB NOT NULL,        -- little-endian f32 x dimensions
    PRIMARY KEY (fingerprint, chunk_hash)
) WITHOUT ROWID;

-- The title embedded in front of the chunk text (see quarry_core::embed_text).
ALTER TABLE chunks ADD COLUMN title TEXT NOT NULL DEFAULT '';

DROP TABLE embedding_versions;
CREATE TABLE embedding_versions (
    collection   TEXT NOT NULL,
    id           TEXT NOT NULL,
    embedder     TEXT NOT NULL,        -- name in [embedders.NAME]
    fingerprint  TEXT NOT NULL,
    spec         TEXT NOT NULL,        -- canonical JSON of the embedder spec
    state        TEXT NOT NULL,        -- building | ready | active | retired | failed
    created_at   INTEGER NOT NULL,
    activated_at INTEGER,
    PRIMARY KEY (collection, id)
);

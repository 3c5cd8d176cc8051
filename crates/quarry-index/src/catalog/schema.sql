-- quarry catalog, schema version 1. The catalog is the source of truth; the BM25 index (and, later,
-- the vector indexes) are derived from it and replayed from `changelog` after a crash.

CREATE TABLE collections (
    name            TEXT PRIMARY KEY,
    created_at      INTEGER NOT NULL,
    -- last committed generation; every write transaction increments it
    generation      INTEGER NOT NULL DEFAULT 0,
    -- JSON of quarry_core::ChunkOptions the collection was built with
    chunk_options   TEXT NOT NULL,
    -- id of the embedding version that answers queries (NULL until one exists)
    active_version  TEXT
);

CREATE TABLE documents (
    collection    TEXT NOT NULL,
    doc_id        TEXT NOT NULL,
    title         TEXT NOT NULL,
    text          TEXT NOT NULL,
    source        TEXT NOT NULL,
    format        TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    metadata      TEXT NOT NULL,        -- JSON object
    acl           TEXT NOT NULL,        -- JSON array of principals; [] = the default ACL
    generation    INTEGER NOT NULL,     -- generation of the last change
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (collection, doc_id)
);
CREATE INDEX documents_by_source ON documents (collection, source);

-- content-addressed chunk texts, stored once per collection
CREATE TABLE chunks (
    collection  TEXT NOT NULL,
    chunk_hash  TEXT NOT NULL,
    text        TEXT NOT NULL,
    PRIMARY KEY (collection, chunk_hash)
);

-- which document holds which chunk, where
CREATE TABLE doc_chunks (
    collection  TEXT NOT NULL,
    doc_id      TEXT NOT NULL,
    ord         INTEGER NOT NULL,
    chunk_hash  TEXT NOT NULL,
    start       INTEGER NOT NULL,
    end         INTEGER NOT NULL,
    PRIMARY KEY (collection, doc_id, ord)
);
CREATE INDEX doc_chunks_by_hash ON doc_chunks (collection, chunk_hash);

-- chunks touched by each generation, until every derived index has committed that generation
CREATE TABLE changelog (
    collection  TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    chunk_hash  TEXT NOT NULL,
    PRIMARY KEY (collection, generation, chunk_hash)
);

-- Reserved for the issues that follow (shape fixed now so later migrations only add columns).
CREATE TABLE embedding_versions (
    id           TEXT PRIMARY KEY,
    collection   TEXT NOT NULL,
    embedder     TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    spec         TEXT NOT NULL,        -- JSON embedder spec
    state        TEXT NOT NULL,        -- building | ready | active | retired | failed
    created_at   INTEGER NOT NULL,
    activated_at INTEGER,
    vectors      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    collection  TEXT NOT NULL,
    state       TEXT NOT NULL,         -- queued | running | succeeded | failed | cancelled
    params      TEXT NOT NULL,         -- JSON
    checkpoint  TEXT,                  -- JSON, written as the job progresses
    processed   INTEGER NOT NULL DEFAULT 0,
    total       INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE eval_runs (
    id          TEXT PRIMARY KEY,
    collection  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    config      TEXT NOT NULL,         -- JSON: version, chunking, fusion
    metrics     TEXT NOT NULL          -- JSON
);

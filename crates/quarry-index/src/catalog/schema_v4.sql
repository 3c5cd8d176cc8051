-- Schema version 4: background jobs (re-index, re-chunk) with their counters, result and
-- cancellation; the order in which versions were made active; canary sets.
ALTER TABLE jobs ADD COLUMN embedded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cache_hits INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN result TEXT;                         -- JSON, when the job ended
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN started_at INTEGER;
CREATE INDEX jobs_by_state ON jobs (state, created_at);
-- The order in which a collection's versions were last made active (the most recent is highest).
ALTER TABLE embedding_versions ADD COLUMN activation_seq INTEGER NOT NULL DEFAULT 0;
-- Canary sets: a few chunks of each embedding version with the vectors it stored for them, to
-- re-embed later and notice a provider that changed its model behind the same name.
CREATE TABLE canaries (
    collection  TEXT NOT NULL,
    version     TEXT NOT NULL,
    chunk_hash  TEXT NOT NULL,
    text        TEXT NOT NULL,         -- the text as embedded
    vector      BLOB NOT NULL,         -- little-endian f32, as stored at capture
    PRIMARY KEY (collection, version, chunk_hash)
);

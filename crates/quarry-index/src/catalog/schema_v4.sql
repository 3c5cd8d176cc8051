-- Schema version 4: background jobs (re-index) with their counters, result and cancellation, and
-- when an embedding version was retired.
ALTER TABLE jobs ADD COLUMN embedded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cache_hits INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN result TEXT;                         -- JSON, when the job ended
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN started_at INTEGER;
CREATE INDEX jobs_by_state ON jobs (state, created_at);

-- Schema version 3: eval runs keep their per-query results apart from their summary, so listing
-- the history reads only the summaries.
ALTER TABLE eval_runs ADD COLUMN queries TEXT NOT NULL DEFAULT '{}';
CREATE INDEX eval_runs_by_collection ON eval_runs (collection, created_at);
-- Golden sets: judged queries of a collection, evaluated against it as it is (quarry eval --golden).
CREATE TABLE golden_sets (
    collection  TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    queries     TEXT NOT NULL,         -- JSON array of {"id", "query", "relevant": {doc_id: grade}}
    PRIMARY KEY (collection, name)
);

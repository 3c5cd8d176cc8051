-- Schema version 3: eval runs keep their per-query results apart from their summary, so listing
-- the history reads only the summaries.
ALTER TABLE eval_runs ADD COLUMN queries TEXT NOT NULL DEFAULT '{}';
CREATE INDEX eval_runs_by_collection ON eval_runs (collection, created_at);

-- Schema version 11: the tokens a job embedded, as its embedder counted them (0 for an embedder
-- that counts none), for its tokens per second.
ALTER TABLE jobs ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0;

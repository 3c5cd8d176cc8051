-- Schema version 8: each embedding version's index parameters (JSON; `quantization` absent means
-- the `[vector] quantization` setting) and the folder under `vectors/` its index lives in (NULL:
-- the version id). A requantize job builds the index anew in another folder and switches both in
-- one update; they are not part of the fingerprint (same embeddings, another index).
ALTER TABLE embedding_versions ADD COLUMN index_params TEXT NOT NULL DEFAULT '{}';
ALTER TABLE embedding_versions ADD COLUMN index_folder TEXT;

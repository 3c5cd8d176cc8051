-- Schema version 10: a collection's BM25 parameters (`Bm25Params` as JSON: k1, b, k3), set when it
-- is created. NULL for a collection created before: the defaults of the running quarry.
ALTER TABLE collections ADD COLUMN bm25_params TEXT;

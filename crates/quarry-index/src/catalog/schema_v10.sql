-- Schema version 10: a collection's BM25 parameters (`Bm25Params` as JSON: k1, b, k3), set when it
-- is created. A collection created before keeps the scoring it had (tantivy's k1 1.2 and b 0.75,
-- each query term counted once): an upgrade does not move its rankings, its eval baselines or its
-- alarms.
ALTER TABLE collections ADD COLUMN bm25_params TEXT;
UPDATE collections SET bm25_params = '{"k1":1.2,"b":0.75,"k3":0.0}' WHERE bm25_params IS NULL;

-- Schema version 5: the generation each process's in-memory vector index still needs the change
-- log from. A process (a server, a CLI ingest) that holds a vector graph in memory writes its row
-- when it publishes and when it catches up with another process's commits; the log is pruned only
-- below the oldest row seen in the last `HOLD_TTL` seconds, so a server can always catch up
-- with what a CLI ingest committed, and the CLI with what the server committed.
CREATE TABLE index_holds (
    collection  TEXT NOT NULL,
    holder      TEXT NOT NULL,         -- one per open engine: pid and start time
    generation  INTEGER NOT NULL,      -- the log is needed from here on
    seen_at     INTEGER NOT NULL,      -- unix seconds of the last update
    PRIMARY KEY (collection, holder)
);

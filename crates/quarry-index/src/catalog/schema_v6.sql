-- Schema version 6: the last generation that erased a document (`quarry forget`). A process whose
-- vector graph is older than it rebuilds the graph without tombstones when it catches up, so no
-- process keeps (or later dumps) the vector of a forgotten chunk.
ALTER TABLE collections ADD COLUMN forgotten_generation INTEGER NOT NULL DEFAULT 0;
-- A value no other collection of this name had: a collection deleted and created again (by another
-- process) is told apart from the one a server still has open.
ALTER TABLE collections ADD COLUMN incarnation TEXT NOT NULL DEFAULT '';

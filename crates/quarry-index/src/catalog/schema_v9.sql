-- Schema version 9: the page of each occurrence of a PDF chunk (1-based; NULL for other
-- formats). A PDF's chunks never cross a page, so one number says where the chunk is.
ALTER TABLE doc_chunks ADD COLUMN page INTEGER;

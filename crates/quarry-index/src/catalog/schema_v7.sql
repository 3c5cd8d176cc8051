-- Schema version 7: the heading path of each occurrence of a Markdown chunk (a JSON array of the
-- headings in effect at the chunk's first line, outermost first; `[]` for other formats). The
-- migration fills it for the Markdown documents already stored (`schema::fill_heading_paths`).
ALTER TABLE doc_chunks ADD COLUMN heading_path TEXT NOT NULL DEFAULT '[]';

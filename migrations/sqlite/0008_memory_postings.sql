-- 0008_memory_postings: PostgreSQL-only (an impact-ordered inverted index
-- for its full-text leg; SQLite ranks with FTS5); this file keeps the two
-- dialects' versions in step.
SELECT 1;

-- 0011_memory_terms_vacuum: PostgreSQL vacuums memory_terms after a fixed
-- number of changes; SQLite updates rows in place and needs nothing. The
-- version keeps the two dialects' numbering in step.
SELECT 1;

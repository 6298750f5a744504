-- 0009_memory_postings: PostgreSQL has had memory_postings since 0008; this
-- version brings SQLite to the same impact-ordered index, and the two
-- dialects keep one numbering.
SELECT 1;

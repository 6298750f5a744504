-- 0004_queue_vacuum: PostgreSQL-only tuning of autovacuum on the queue tables
-- (messages, runs, agents). SQLite deletes index entries in place, so there is
-- nothing to tune; this file keeps the two dialects' versions in step.
SELECT 1;

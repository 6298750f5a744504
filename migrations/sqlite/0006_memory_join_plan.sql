-- 0006_memory_join_plan: PostgreSQL-only (drops an index that misled its
-- planner when joining search hits to their memories); this file keeps the
-- two dialects' versions in step.
SELECT 1;

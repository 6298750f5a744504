-- 0005_vector_search_plan: PostgreSQL-only (drops a B-tree that kept the
-- planner off the HNSW index). SQLite scores vectors in Go from its cache;
-- this file keeps the two dialects' versions in step.
SELECT 1;

-- 0005_vector_search_plan: let vector search use the HNSW index.
--
-- With a B-tree on (scope, model), the planner found a scope's vectors
-- through it and sorted them all by distance: exact, but O(n) with a 4 KiB
-- vector detoasted per row (32 ms at 3,000 memories, growing linearly).
-- Without it, ORDER BY distance LIMIT k uses the per-model HNSW index and
-- filters the scope during the (iterative) scan: 1.9 ms at 3,000. Nothing
-- else reads vectors by scope.
DROP INDEX IF EXISTS memory_vectors_model_idx;

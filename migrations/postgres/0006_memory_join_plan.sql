-- 0006_memory_join_plan: join search hits to their memories by primary key.
--
-- Loading a search's hits joins each chunk to its memory on (scope,
-- memory_id). Before the first ANALYZE of a growing table the planner took
-- memories_created_idx (scope, created_at) for that join and filtered
-- memory_id, walking the whole scope for every hit: 21 ms for 50 hits at
-- 3,000 memories, growing linearly. The primary key is the right path; the
-- time filters of a search work without this index.
DROP INDEX IF EXISTS memories_created_idx;

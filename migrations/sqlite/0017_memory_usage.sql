-- 0017_memory_usage: what each scope's memories hold, for the memory quota.
--
-- Every memory insert adds its text's bytes (and one memory) to its scope's
-- row, and every delete takes them away, in the transaction of the write, so
-- the quota check reads one row instead of summing the scope's memories.
-- Existing memories are counted here (text is stored as UTF-8, so the length
-- of its blob is its bytes).
CREATE TABLE memory_usage (
    org_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL DEFAULT '',
    memories   INTEGER NOT NULL,
    text_bytes INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id)
) STRICT;

INSERT INTO memory_usage (org_id, user_id, project_id, memories, text_bytes)
SELECT org_id, user_id, project_id, count(*), sum(length(CAST(text AS BLOB))) FROM memories
GROUP BY org_id, user_id, project_id;

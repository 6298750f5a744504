-- 0017_memory_usage: what each scope's memories hold, for the memory quota.
--
-- Every memory insert adds its text's bytes (and one memory) to its scope's
-- row, and every delete takes them away, in the transaction of the write:
-- the quota check reads one row instead of summing the scope's memories, and
-- the row lock of that update serialises a scope's writers, so two writes
-- that each fit alone cannot both pass when together they do not. The rows
-- are taken after memory_terms' rows by every writer, so they add no
-- deadlock. Existing memories are counted here.
CREATE TABLE memory_usage (
    org_id     TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    project_id TEXT   NOT NULL DEFAULT '',
    memories   BIGINT NOT NULL,
    text_bytes BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id)
);

ALTER TABLE memory_usage SET (fillfactor = 70);

INSERT INTO memory_usage (org_id, user_id, project_id, memories, text_bytes)
SELECT org_id, user_id, project_id, count(*), sum(octet_length(text)) FROM memories
GROUP BY org_id, user_id, project_id;

-- 0013_core_memory_applied: core memory edits applied once per tool call.
--
-- A turn's tool call cut off after its edit and before its result was stored
-- runs again when the run resumes; core_memory_append would append twice and
-- core_memory_replace would no longer find its old text. The key of each call
-- that edited a block commits with the edit, so a call run again finds it and
-- leaves the block as it is.
CREATE TABLE core_memory_applied (
    org_id     TEXT        NOT NULL,
    user_id    TEXT        NOT NULL,
    project_id TEXT        NOT NULL DEFAULT '',
    agent_id   TEXT        NOT NULL,
    key        TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, agent_id, key)
);

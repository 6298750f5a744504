-- 0020_tool_policies: each scope's tool policy rules (allow, deny or ask a
-- tool call), one JSON array per scope with a version for optimistic
-- concurrency. A project's rules and the rules of its scope without project
-- are two rows; package policy layers them. Times are Unix microseconds.
CREATE TABLE tool_policies (
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    project_id TEXT NOT NULL DEFAULT '',
    rules      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_by TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id)
) STRICT;

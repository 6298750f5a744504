-- 0025_feishu: Feishu connectors, their sync jobs and the documents they saw
-- (see the PostgreSQL migration). Times are Unix microseconds.
CREATE TABLE feishu_connectors (
    org_id         TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    project_id     TEXT    NOT NULL DEFAULT '',
    connector_id   TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    enabled        INTEGER NOT NULL DEFAULT 1,
    sources        TEXT    NOT NULL DEFAULT '[]',
    last_job_id    TEXT    NOT NULL DEFAULT '',
    last_queued_at INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, connector_id)
) STRICT;

CREATE INDEX feishu_connectors_due_idx ON feishu_connectors (last_queued_at) WHERE enabled;

CREATE TABLE feishu_connector_jobs (
    org_id       TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    project_id   TEXT    NOT NULL DEFAULT '',
    connector_id TEXT    NOT NULL,
    job_id       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, connector_id, job_id)
) STRICT;

CREATE INDEX feishu_connector_jobs_created_idx ON feishu_connector_jobs (org_id, user_id, project_id, connector_id, created_at);

CREATE TABLE feishu_docs (
    org_id       TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    project_id   TEXT    NOT NULL DEFAULT '',
    connector_id TEXT    NOT NULL,
    token        TEXT    NOT NULL,
    obj_type     TEXT    NOT NULL DEFAULT '',
    title        TEXT    NOT NULL DEFAULT '',
    url          TEXT    NOT NULL DEFAULT '',
    version      TEXT    NOT NULL DEFAULT '',
    content_hash TEXT    NOT NULL DEFAULT '',
    sections     INTEGER NOT NULL DEFAULT 0,
    job_id       TEXT    NOT NULL DEFAULT '',
    outcome      TEXT    NOT NULL DEFAULT '',
    deleted      INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, connector_id, token)
) STRICT;

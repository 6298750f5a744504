-- 0025_feishu: Feishu connectors, their sync jobs and the documents they saw.
--
-- A connector lives in one scope and syncs its sources (JSON as text: docx
-- documents, wiki spaces, drive folders) into that scope's archival memory.
-- feishu_connector_jobs links a connector to its jobs, so a sync is queued
-- only when none of the connector's jobs is queued or running (decided in
-- the transaction that locks the connector's row). feishu_docs is what the
-- syncs saw of each document: the version ingested, the content hash its
-- memories are keyed by, and the job that last touched it with its outcome.
CREATE TABLE feishu_connectors (
    org_id         TEXT        NOT NULL,
    user_id        TEXT        NOT NULL,
    project_id     TEXT        NOT NULL DEFAULT '',
    connector_id   TEXT        NOT NULL,
    name           TEXT        NOT NULL,
    enabled        BOOLEAN     NOT NULL DEFAULT true,
    sources        TEXT        NOT NULL DEFAULT '[]',
    last_job_id    TEXT        NOT NULL DEFAULT '',
    last_queued_at TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, connector_id)
);

-- What the poller reads: enabled connectors, least recently queued first.
CREATE INDEX feishu_connectors_due_idx ON feishu_connectors (last_queued_at) WHERE enabled;

CREATE TABLE feishu_connector_jobs (
    org_id       TEXT        NOT NULL,
    user_id      TEXT        NOT NULL,
    project_id   TEXT        NOT NULL DEFAULT '',
    connector_id TEXT        NOT NULL,
    job_id       TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, connector_id, job_id)
);

CREATE INDEX feishu_connector_jobs_created_idx ON feishu_connector_jobs (org_id, user_id, project_id, connector_id, created_at);

CREATE TABLE feishu_docs (
    org_id       TEXT        NOT NULL,
    user_id      TEXT        NOT NULL,
    project_id   TEXT        NOT NULL DEFAULT '',
    connector_id TEXT        NOT NULL,
    token        TEXT        NOT NULL,
    obj_type     TEXT        NOT NULL DEFAULT '',
    title        TEXT        NOT NULL DEFAULT '',
    url          TEXT        NOT NULL DEFAULT '',
    version      TEXT        NOT NULL DEFAULT '',
    content_hash TEXT        NOT NULL DEFAULT '',
    sections     INTEGER     NOT NULL DEFAULT 0,
    job_id       TEXT        NOT NULL DEFAULT '',
    outcome      TEXT        NOT NULL DEFAULT '',
    deleted      BOOLEAN     NOT NULL DEFAULT false,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, connector_id, token)
);

-- 0023_jobs: durable ingestion jobs and the inputs uploaded with them.
--
-- A job is claimed by a runner with a lease (lease_owner, lease_until) it
-- renews as it saves progress; a job left running with a lapsed lease lost
-- its runner and is claimed again, resuming from checkpoint (opaque JSON of
-- the job's kind). job_inputs holds uploaded files until the job ends, so a
-- resumed job still has them. Times are Unix microseconds.
CREATE TABLE jobs (
    org_id           TEXT    NOT NULL,
    user_id          TEXT    NOT NULL,
    project_id       TEXT    NOT NULL DEFAULT '',
    job_id           TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    params           TEXT    NOT NULL DEFAULT '{}',
    done             INTEGER NOT NULL DEFAULT 0,
    total            INTEGER NOT NULL DEFAULT 0,
    counts           TEXT    NOT NULL DEFAULT '{}',
    errors           TEXT    NOT NULL DEFAULT '[]',
    checkpoint       TEXT    NOT NULL DEFAULT 'null',
    error            TEXT    NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT    NOT NULL DEFAULT '',
    lease_until      INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    PRIMARY KEY (org_id, user_id, project_id, job_id)
) STRICT;

CREATE INDEX jobs_created_idx ON jobs (org_id, user_id, project_id, created_at, job_id);
CREATE INDEX jobs_claim_idx ON jobs (created_at, job_id) WHERE status IN ('queued', 'running');

CREATE TABLE job_inputs (
    org_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL DEFAULT '',
    job_id     TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    data       BLOB    NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, job_id, seq)
) STRICT;

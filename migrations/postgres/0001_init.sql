-- 0001_init: OpenIntern's core tables: agents, inbox messages, runs,
-- checkpoints and the event trace.
--
-- Every tenant table carries the scope (org_id, user_id, project_id, with
-- project_id '' when absent) and every query names it. There are no foreign
-- keys between the tables on purpose: an agent's messages, runs and events
-- outlive it as its trace.
--
-- Partial indexes are only used with literal conditions (status = 'unread',
-- status = 'running', status = 'completed'), which the queries repeat
-- verbatim, so generic plans of prepared statements can use them too.

CREATE TABLE agents (
    org_id        TEXT        NOT NULL,
    user_id       TEXT        NOT NULL,
    project_id    TEXT        NOT NULL DEFAULT '',
    agent_id      TEXT        NOT NULL,
    name          TEXT        NOT NULL DEFAULT '',
    system_prompt TEXT        NOT NULL DEFAULT '',
    model         TEXT        NOT NULL DEFAULT '',
    tools         JSONB       NOT NULL DEFAULT '[]',
    state         TEXT        NOT NULL DEFAULT 'idle',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, agent_id)
);

CREATE INDEX agents_created_idx ON agents (org_id, user_id, project_id, created_at, agent_id);

-- seq is global and gives the inbox its strict order.
CREATE TABLE messages (
    seq         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      TEXT        NOT NULL,
    user_id     TEXT        NOT NULL,
    project_id  TEXT        NOT NULL DEFAULT '',
    message_id  TEXT        NOT NULL,
    agent_id    TEXT        NOT NULL,
    session_key TEXT        NOT NULL DEFAULT '',
    kind        TEXT        NOT NULL DEFAULT 'message' CHECK (kind IN ('message', 'run')),
    sender_type TEXT        NOT NULL DEFAULT '',
    sender_id   TEXT        NOT NULL DEFAULT '',
    content     TEXT        NOT NULL DEFAULT '',
    run_id      TEXT,
    status      TEXT        NOT NULL DEFAULT 'unread' CHECK (status IN ('unread', 'read')),
    created_at  TIMESTAMPTZ NOT NULL,
    read_at     TIMESTAMPTZ,
    CONSTRAINT messages_message_id_key UNIQUE (org_id, user_id, project_id, message_id)
);

-- An agent's inbox in order (ListMessages).
CREATE INDEX messages_agent_seq_idx ON messages (org_id, user_id, project_id, agent_id, seq);
-- What is left to do: ClaimNextRun, unread counts, ListAgentsWithWork.
CREATE INDEX messages_unread_idx ON messages (org_id, user_id, project_id, agent_id, seq) WHERE status = 'unread';
-- A run's messages (resume, FinishRun, CancelRun).
CREATE INDEX messages_run_idx ON messages (run_id, seq) WHERE run_id IS NOT NULL;

CREATE TABLE runs (
    org_id           TEXT        NOT NULL,
    user_id          TEXT        NOT NULL,
    project_id       TEXT        NOT NULL DEFAULT '',
    run_id           TEXT        NOT NULL,
    agent_id         TEXT        NOT NULL,
    session_key      TEXT        NOT NULL DEFAULT '',
    group_id         TEXT        NOT NULL DEFAULT '',
    input            TEXT        NOT NULL DEFAULT '',
    status           TEXT        NOT NULL CHECK (status IN
                         ('pending', 'running', 'waiting_approval', 'completed', 'failed', 'cancelled')),
    output           TEXT        NOT NULL DEFAULT '',
    error            JSONB,
    steps            INTEGER     NOT NULL DEFAULT 0,
    usage            JSONB       NOT NULL DEFAULT '{}',
    cancel_requested BOOLEAN     NOT NULL DEFAULT false,
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    ended_at         TIMESTAMPTZ,
    PRIMARY KEY (org_id, user_id, project_id, run_id)
);

CREATE INDEX runs_created_idx ON runs (org_id, user_id, project_id, created_at, run_id);
CREATE INDEX runs_agent_created_idx ON runs (org_id, user_id, project_id, agent_id, created_at, run_id);
CREATE INDEX runs_group_created_idx ON runs (org_id, user_id, project_id, group_id, created_at, run_id);
-- An agent works on one run at a time: a second running run is a conflict.
CREATE UNIQUE INDEX runs_running_idx ON runs (org_id, user_id, project_id, agent_id) WHERE status = 'running';
-- SessionHistory reads the last turns of a session from here, whatever its length.
CREATE INDEX runs_session_completed_idx ON runs (org_id, user_id, project_id, agent_id, session_key, ended_at, run_id)
    WHERE status = 'completed';

-- state is json, not jsonb: it is written on every step and only read back
-- whole, so it is kept byte for byte.
CREATE TABLE checkpoints (
    org_id     TEXT        NOT NULL,
    user_id    TEXT        NOT NULL,
    project_id TEXT        NOT NULL DEFAULT '',
    run_id     TEXT        NOT NULL,
    step       INTEGER     NOT NULL,
    state      JSON,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, run_id)
);

-- The append-only trace. payload is json (kept byte for byte, and it accepts
-- the \u0000 escapes jsonb refuses, which tool output can contain).
CREATE TABLE events (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id     TEXT        NOT NULL,
    user_id    TEXT        NOT NULL,
    project_id TEXT        NOT NULL DEFAULT '',
    run_id     TEXT        NOT NULL DEFAULT '',
    agent_id   TEXT        NOT NULL DEFAULT '',
    group_id   TEXT        NOT NULL DEFAULT '',
    step_id    TEXT        NOT NULL DEFAULT '',
    type       TEXT        NOT NULL,
    ts         TIMESTAMPTZ NOT NULL,
    payload    JSON
);

CREATE INDEX events_run_idx ON events (run_id, id);
CREATE INDEX events_agent_idx ON events (org_id, user_id, project_id, agent_id, id);
CREATE INDEX events_group_idx ON events (org_id, user_id, project_id, group_id, id);
CREATE INDEX events_scope_idx ON events (org_id, user_id, project_id, id);

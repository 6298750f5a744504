-- 0001_init: OpenIntern's core tables: agents, inbox messages, runs,
-- checkpoints and the event trace.
--
-- Every tenant table carries the scope (org_id, user_id, project_id, with
-- project_id '' when absent) and every query names it. There are no foreign
-- keys between the tables on purpose: an agent's messages, runs and events
-- outlive it as its trace.
--
-- Times are INTEGER microseconds since the Unix epoch, UTC. JSON is TEXT.
-- AUTOINCREMENT keeps seq and event ids from ever being reused.

CREATE TABLE agents (
    org_id        TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    project_id    TEXT    NOT NULL DEFAULT '',
    agent_id      TEXT    NOT NULL,
    name          TEXT    NOT NULL DEFAULT '',
    system_prompt TEXT    NOT NULL DEFAULT '',
    model         TEXT    NOT NULL DEFAULT '',
    tools         TEXT    NOT NULL DEFAULT '[]',
    state         TEXT    NOT NULL DEFAULT 'idle',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, agent_id)
) STRICT;

CREATE INDEX agents_created_idx ON agents (org_id, user_id, project_id, created_at, agent_id);

CREATE TABLE messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id      TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    project_id  TEXT    NOT NULL DEFAULT '',
    message_id  TEXT    NOT NULL,
    agent_id    TEXT    NOT NULL,
    session_key TEXT    NOT NULL DEFAULT '',
    kind        TEXT    NOT NULL DEFAULT 'message' CHECK (kind IN ('message', 'run')),
    sender_type TEXT    NOT NULL DEFAULT '',
    sender_id   TEXT    NOT NULL DEFAULT '',
    content     TEXT    NOT NULL DEFAULT '',
    run_id      TEXT,
    status      TEXT    NOT NULL DEFAULT 'unread' CHECK (status IN ('unread', 'read')),
    created_at  INTEGER NOT NULL,
    read_at     INTEGER,
    UNIQUE (org_id, user_id, project_id, message_id)
) STRICT;

CREATE INDEX messages_agent_seq_idx ON messages (org_id, user_id, project_id, agent_id, seq);
CREATE INDEX messages_unread_idx ON messages (org_id, user_id, project_id, agent_id, seq) WHERE status = 'unread';
CREATE INDEX messages_run_idx ON messages (run_id, seq) WHERE run_id IS NOT NULL;

CREATE TABLE runs (
    org_id           TEXT    NOT NULL,
    user_id          TEXT    NOT NULL,
    project_id       TEXT    NOT NULL DEFAULT '',
    run_id           TEXT    NOT NULL,
    agent_id         TEXT    NOT NULL,
    session_key      TEXT    NOT NULL DEFAULT '',
    group_id         TEXT    NOT NULL DEFAULT '',
    input            TEXT    NOT NULL DEFAULT '',
    status           TEXT    NOT NULL CHECK (status IN
                         ('pending', 'running', 'waiting_approval', 'completed', 'failed', 'cancelled')),
    output           TEXT    NOT NULL DEFAULT '',
    error            TEXT,
    steps            INTEGER NOT NULL DEFAULT 0,
    usage            TEXT    NOT NULL DEFAULT '{}',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    ended_at         INTEGER,
    PRIMARY KEY (org_id, user_id, project_id, run_id)
) STRICT;

CREATE INDEX runs_created_idx ON runs (org_id, user_id, project_id, created_at, run_id);
CREATE INDEX runs_agent_created_idx ON runs (org_id, user_id, project_id, agent_id, created_at, run_id);
CREATE INDEX runs_group_created_idx ON runs (org_id, user_id, project_id, group_id, created_at, run_id);
CREATE UNIQUE INDEX runs_running_idx ON runs (org_id, user_id, project_id, agent_id) WHERE status = 'running';
CREATE INDEX runs_session_completed_idx ON runs (org_id, user_id, project_id, agent_id, session_key, ended_at, run_id)
    WHERE status = 'completed';

CREATE TABLE checkpoints (
    org_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL DEFAULT '',
    run_id     TEXT    NOT NULL,
    step       INTEGER NOT NULL,
    state      TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, run_id)
) STRICT;

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL DEFAULT '',
    run_id     TEXT    NOT NULL DEFAULT '',
    agent_id   TEXT    NOT NULL DEFAULT '',
    group_id   TEXT    NOT NULL DEFAULT '',
    step_id    TEXT    NOT NULL DEFAULT '',
    type       TEXT    NOT NULL,
    ts         INTEGER NOT NULL,
    payload    TEXT
) STRICT;

CREATE INDEX events_run_idx ON events (run_id, id);
CREATE INDEX events_agent_idx ON events (org_id, user_id, project_id, agent_id, id);
CREATE INDEX events_group_idx ON events (org_id, user_id, project_id, group_id, id);
CREATE INDEX events_scope_idx ON events (org_id, user_id, project_id, id);

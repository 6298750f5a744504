-- 0021_approvals: tool calls a policy asked a person to approve.
--
-- An approval binds to its run and call (call_key: run, step, position and
-- call id; one per call, so a call resumed after a crash asks once) and to a
-- hash of the call's arguments. While it is pending its run is
-- waiting_approval and the agent claims nothing else. Times are Unix
-- microseconds.
CREATE TABLE approvals (
    org_id          TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    project_id      TEXT    NOT NULL DEFAULT '',
    approval_id     TEXT    NOT NULL,
    run_id          TEXT    NOT NULL,
    agent_id        TEXT    NOT NULL DEFAULT '',
    step            INTEGER NOT NULL,
    call_index      INTEGER NOT NULL,
    call_id         TEXT    NOT NULL,
    call_key        TEXT    NOT NULL,
    tool            TEXT    NOT NULL,
    arguments       TEXT    NOT NULL,
    args_hash       TEXT    NOT NULL,
    reason          TEXT    NOT NULL DEFAULT '',
    rule            TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    decided_by      TEXT    NOT NULL DEFAULT '',
    decision_reason TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    decided_at      INTEGER,
    PRIMARY KEY (org_id, user_id, project_id, approval_id)
) STRICT;

CREATE UNIQUE INDEX approvals_call_idx ON approvals (org_id, user_id, project_id, run_id, call_key);
CREATE INDEX approvals_status_idx ON approvals (org_id, user_id, project_id, status, created_at);
CREATE INDEX approvals_due_idx ON approvals (expires_at) WHERE status = 'pending';
-- A claim asks whether the agent has a run waiting for an approval.
CREATE INDEX runs_waiting_idx ON runs (org_id, user_id, project_id, agent_id) WHERE status = 'waiting_approval';

-- 0007_teams: roles, groups and their members; group runs; spawned agents.
--
-- A role is a job in a team (prompt, model, tool permission). allowed_tools
-- is NULL when the role inherits the agent's tools and '[]' when it permits
-- none, so the column is nullable on purpose. A group is a team of agents,
-- each member with one role; at most one member of a group has a lead role,
-- which the store checks in the transactions that add members or change
-- roles (a constraint cannot see through the join to roles.is_lead). The
-- table is agent_groups because GROUPS is a keyword of the SQL standard.
-- Like the other tables, these have no foreign keys: the store checks that a
-- member's group and role exist, and removes memberships with them.
--
-- agents.parent_id names the agent that spawned an agent ('' for none).
-- messages.group_id marks a message to a group member: a claim batches only
-- messages of one group, and the run works in that group. A group run is a
-- row of runs with agent_id '': it has events, a checkpoint and a status
-- like any run, but no agent claims it. runs.parent_run_id names a member's
-- run's group run, runs.role_id the role it works in.
--
-- Several group runs of a scope may run at once, so runs_running_idx (one
-- running run per agent) becomes unique per agent for agent runs and per
-- run for group runs: the expression is run_id when agent_id is '' and ''
-- otherwise. Its leading columns are unchanged, so the queries for an
-- agent's running run still use it.

CREATE TABLE roles (
    org_id        TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    project_id    TEXT    NOT NULL DEFAULT '',
    role_id       TEXT    NOT NULL,
    name          TEXT    NOT NULL DEFAULT '',
    description   TEXT    NOT NULL DEFAULT '',
    system_prompt TEXT    NOT NULL DEFAULT '',
    model         TEXT    NOT NULL DEFAULT '',
    allowed_tools TEXT,
    is_lead       INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, role_id)
) STRICT;

CREATE INDEX roles_created_idx ON roles (org_id, user_id, project_id, created_at, role_id);

CREATE TABLE agent_groups (
    org_id      TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    project_id  TEXT    NOT NULL DEFAULT '',
    group_id    TEXT    NOT NULL,
    name        TEXT    NOT NULL DEFAULT '',
    description TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, group_id)
) STRICT;

CREATE INDEX agent_groups_created_idx ON agent_groups (org_id, user_id, project_id, created_at, group_id);

-- The primary key serves a group's members; the indexes below a role's
-- members (DeleteRole, UpdateRole) and an agent's memberships.
CREATE TABLE group_members (
    org_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL DEFAULT '',
    group_id   TEXT    NOT NULL,
    agent_id   TEXT    NOT NULL,
    role_id    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, group_id, agent_id)
) STRICT;

CREATE INDEX group_members_role_idx ON group_members (org_id, user_id, project_id, role_id, group_id);
CREATE INDEX group_members_agent_idx ON group_members (org_id, user_id, project_id, agent_id, group_id);

ALTER TABLE agents ADD COLUMN parent_id TEXT NOT NULL DEFAULT '';
-- CountChildren.
CREATE INDEX agents_parent_idx ON agents (org_id, user_id, project_id, parent_id);

ALTER TABLE messages ADD COLUMN group_id TEXT NOT NULL DEFAULT '';

ALTER TABLE runs ADD COLUMN parent_run_id TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN role_id TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_parent_created_idx ON runs (org_id, user_id, project_id, parent_run_id, created_at, run_id);
CREATE INDEX runs_role_created_idx ON runs (org_id, user_id, project_id, role_id, created_at, run_id);

DROP INDEX runs_running_idx;
-- An agent works on one run at a time; group runs (agent_id '') are one each.
CREATE UNIQUE INDEX runs_running_idx ON runs
    (org_id, user_id, project_id, agent_id, (CASE WHEN agent_id = '' THEN run_id ELSE '' END))
    WHERE status = 'running';

-- A blackboard is the group's memories, newest first. Partial, so the memory
-- search plans (which never name the literal) cannot pick it up.
CREATE INDEX memories_group_created_idx ON memories (org_id, user_id, project_id, group_id, created_at, memory_id)
    WHERE group_id <> '';

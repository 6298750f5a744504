-- 0019_skills: skills uploaded into a scope, their files, and the skills
-- granted to agents and roles.
--
-- A skill is a SKILL.md (name, description, body) and the files of its
-- folder; they are kept in the database, not on a daemon's disk, so every
-- daemon of a deployment reads the same. Skills of the daemon's skills
-- folder are not stored. agents.skills and roles.skills are the names of the
-- granted skills (a role's add to its member's own).
CREATE TABLE skills (
    org_id        TEXT        NOT NULL,
    user_id       TEXT        NOT NULL,
    project_id    TEXT        NOT NULL DEFAULT '',
    name          TEXT        NOT NULL,
    description   TEXT        NOT NULL,
    body          TEXT        NOT NULL,
    allowed_tools JSONB       NOT NULL DEFAULT '[]',
    size_bytes    BIGINT      NOT NULL,
    files_count   INTEGER     NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, name)
);

CREATE TABLE skill_files (
    org_id     TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    project_id TEXT   NOT NULL DEFAULT '',
    name       TEXT   NOT NULL,
    path       TEXT   NOT NULL,
    content    BYTEA  NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, name, path),
    FOREIGN KEY (org_id, user_id, project_id, name) REFERENCES skills ON DELETE CASCADE
);

ALTER TABLE agents ADD COLUMN skills JSONB NOT NULL DEFAULT '[]';
ALTER TABLE roles ADD COLUMN skills JSONB NOT NULL DEFAULT '[]';

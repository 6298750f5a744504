-- 0019_skills: skills uploaded into a scope, their files, and the skills
-- granted to agents and roles.
--
-- A skill is a SKILL.md (name, description, body) and the files of its
-- folder. Skills of the daemon's skills folder are not stored.
-- agents.skills and roles.skills are the names of the granted skills, as a
-- JSON list (a role's add to its member's own). Times are Unix microseconds.
-- A skill's files are deleted with it by the store, in its transaction.
CREATE TABLE skills (
    org_id        TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    project_id    TEXT    NOT NULL DEFAULT '',
    name          TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    allowed_tools TEXT    NOT NULL DEFAULT '[]',
    size_bytes    INTEGER NOT NULL,
    files_count   INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, name)
) STRICT;

CREATE TABLE skill_files (
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    project_id TEXT NOT NULL DEFAULT '',
    name       TEXT NOT NULL,
    path       TEXT NOT NULL,
    content    BLOB NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, name, path)
) STRICT;

ALTER TABLE agents ADD COLUMN skills TEXT NOT NULL DEFAULT '[]';
ALTER TABLE roles ADD COLUMN skills TEXT NOT NULL DEFAULT '[]';

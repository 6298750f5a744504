-- 0015_tokens: API tokens and web console sessions.
--
-- Only a SHA-256 of a secret is kept: the secret is shown once, when it is
-- made. A token belongs to one org and user, and to one project or (project_id
-- '') to whichever the request names. A web session is a cookie signed in with
-- a token; revoking the token ends it.
CREATE TABLE api_tokens (
    token_id    TEXT NOT NULL PRIMARY KEY,
    org_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    project_id  TEXT NOT NULL DEFAULT '',
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'member', 'admin')),
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);

CREATE INDEX api_tokens_owner_idx ON api_tokens (org_id, user_id, created_at);

CREATE TABLE web_sessions (
    secret_hash TEXT NOT NULL PRIMARY KEY,
    token_id    TEXT NOT NULL REFERENCES api_tokens (token_id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX web_sessions_token_idx ON web_sessions (token_id);
CREATE INDEX web_sessions_expires_idx ON web_sessions (expires_at);

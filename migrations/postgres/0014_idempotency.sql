-- 0014_idempotency: the responses of POSTs sent with an Idempotency-Key.
--
-- A row is claimed (status 0) before the handler runs and completed with the
-- handler's response after it, so a retry of the same request replays the
-- first answer instead of doing the work again. token is the claim's owner:
-- a claim whose lease passed may be taken over, and then the first owner can
-- no longer complete or release it.
CREATE TABLE idempotency_keys (
    org_id       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    project_id   TEXT NOT NULL DEFAULT '',
    idem_key     TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    token        TEXT NOT NULL,
    claimed_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    status       INTEGER NOT NULL DEFAULT 0,
    content_type TEXT NOT NULL DEFAULT '',
    body         BYTEA,
    PRIMARY KEY (org_id, user_id, project_id, idem_key)
);

-- The periodic delete of expired keys.
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- 0016_audit_log: the append-only audit log (see store/audit.go).
--
-- Triggers refuse every UPDATE and every DELETE but retention's: the
-- retention call writes its cut-off into audit_log_retention, deletes the
-- older records and empties the table again, all in one write transaction,
-- so no other statement ever sees a cut-off, and even retention cannot
-- delete a record newer than the one it names. Times are Unix microseconds.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    org_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL DEFAULT '',
    actor      TEXT    NOT NULL,
    actor_name TEXT    NOT NULL DEFAULT '',
    via        TEXT    NOT NULL DEFAULT '',
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL DEFAULT '',
    args_hash  TEXT    NOT NULL DEFAULT '',
    outcome    TEXT    NOT NULL,
    request_id TEXT    NOT NULL DEFAULT '',
    detail     TEXT    NOT NULL DEFAULT ''
) STRICT;

-- A scope's records newest first, and retention's delete.
CREATE INDEX audit_log_scope_idx ON audit_log (org_id, user_id, project_id, id);
CREATE INDEX audit_log_created_idx ON audit_log (created_at);

CREATE TABLE audit_log_retention (
    before INTEGER NOT NULL
) STRICT;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: records cannot be changed');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN NOT EXISTS (SELECT 1 FROM audit_log_retention WHERE OLD.created_at < before)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: only retention deletes records older than its cut-off');
END;

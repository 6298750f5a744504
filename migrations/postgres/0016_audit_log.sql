-- 0016_audit_log: the append-only audit log (see store/audit.go).
--
-- Triggers refuse UPDATE, TRUNCATE and every DELETE but retention's. The
-- retention call inserts its cut-off into audit_log_retention, deletes the
-- older records and deletes its cut-off row again, in one transaction: no
-- other transaction ever sees that row (it is never committed), and even
-- retention cannot delete a record newer than the cut-off it names. The same
-- gate as on SQLite (where there are no session settings), rather than
-- partitions dropped by age: one plain table, one index per use, and
-- retention exact to the record. The table's owner can still drop the
-- triggers: they keep the daemon, and anyone using its connection by
-- mistake, from rewriting history, not a superuser.
CREATE TABLE audit_log (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    org_id     TEXT        NOT NULL,
    user_id    TEXT        NOT NULL,
    project_id TEXT        NOT NULL DEFAULT '',
    actor      TEXT        NOT NULL,
    actor_name TEXT        NOT NULL DEFAULT '',
    via        TEXT        NOT NULL DEFAULT '',
    action     TEXT        NOT NULL,
    target     TEXT        NOT NULL DEFAULT '',
    args_hash  TEXT        NOT NULL DEFAULT '',
    outcome    TEXT        NOT NULL,
    request_id TEXT        NOT NULL DEFAULT '',
    detail     TEXT        NOT NULL DEFAULT ''
);

-- A scope's records newest first, and retention's delete.
CREATE INDEX audit_log_scope_idx ON audit_log (org_id, user_id, project_id, id);
CREATE INDEX audit_log_created_idx ON audit_log (created_at);

CREATE TABLE audit_log_retention (
    before TIMESTAMPTZ NOT NULL
);

CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_log_retention WHERE OLD.created_at < before) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();

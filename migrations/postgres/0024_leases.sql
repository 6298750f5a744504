-- 0024_leases: which daemon (node) owns each agent's work and each group's
-- orchestration, and the cluster's membership (issue 16).
--
-- A lease row is kept after it lapses or is released (expires_at in the
-- past), so the next owner's epoch is one more than the last: a write made
-- under an older epoch can always be told apart. Times are the database's
-- clock (clock_timestamp()), never a daemon's.
CREATE TABLE leases (
    org_id     TEXT        NOT NULL,
    user_id    TEXT        NOT NULL,
    project_id TEXT        NOT NULL DEFAULT '',
    kind       TEXT        NOT NULL,
    key        TEXT        NOT NULL,
    node_id    TEXT        NOT NULL,
    epoch      BIGINT      NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, kind, key)
);

-- RenewLeases, RemoveNode and the lease counts of ListNodes read by node.
CREATE INDEX leases_node_idx ON leases (node_id, expires_at);

CREATE TABLE cluster_nodes (
    node_id      TEXT        PRIMARY KEY,
    addr         TEXT        NOT NULL DEFAULT '',
    version      TEXT        NOT NULL DEFAULT '',
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    draining     BOOLEAN     NOT NULL DEFAULT false,
    load         INTEGER     NOT NULL DEFAULT 0
);

-- openintern_check_fence is the fence of a write (store.WithFence), queued
-- into the write's own transaction: it takes the lease row FOR SHARE, so a
-- takeover's update waits for the write to commit (or a write waits for a
-- takeover and then sees its new epoch), and raises SQLSTATE OIF01 unless
-- the lease is still the node's, at that epoch, and not expired.
CREATE FUNCTION openintern_check_fence(p_org TEXT, p_user TEXT, p_project TEXT, p_kind TEXT, p_key TEXT,
    p_node TEXT, p_epoch BIGINT) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    l RECORD;
BEGIN
    SELECT node_id, epoch, expires_at INTO l FROM leases
    WHERE org_id = p_org AND user_id = p_user AND project_id = p_project AND kind = p_kind AND key = p_key
    FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'fenced: no lease on % %', p_kind, p_key USING ERRCODE = 'OIF01';
    END IF;
    IF l.node_id <> p_node OR l.epoch <> p_epoch THEN
        RAISE EXCEPTION 'fenced: the lease on % % is node %''s epoch %, not node %''s epoch %',
            p_kind, p_key, l.node_id, l.epoch, p_node, p_epoch USING ERRCODE = 'OIF01';
    END IF;
    IF l.expires_at <= clock_timestamp() THEN
        RAISE EXCEPTION 'fenced: the lease on % % (node %, epoch %) has expired', p_kind, p_key, p_node, p_epoch
            USING ERRCODE = 'OIF01';
    END IF;
    RETURN true;
END
$$;

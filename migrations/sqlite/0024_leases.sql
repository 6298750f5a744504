-- 0024_leases: which daemon (node) owns each agent's work and each group's
-- orchestration, and the cluster's membership (issue 16). SQLite serves one
-- daemon per file, so its leases are always that daemon's; they are kept so
-- that both stores answer the same. Times are Unix microseconds.
CREATE TABLE leases (
    org_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL DEFAULT '',
    kind       TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    node_id    TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, kind, key)
) STRICT;

CREATE INDEX leases_node_idx ON leases (node_id, expires_at);

CREATE TABLE cluster_nodes (
    node_id      TEXT    PRIMARY KEY,
    addr         TEXT    NOT NULL DEFAULT '',
    version      TEXT    NOT NULL DEFAULT '',
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    draining     INTEGER NOT NULL DEFAULT 0,
    load         INTEGER NOT NULL DEFAULT 0
) STRICT;

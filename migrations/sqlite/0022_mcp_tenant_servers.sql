-- 0022_mcp_tenant_servers: HTTP MCP servers a tenant adds for its own scope
-- (an org's project), and pins kept per scope. Times are Unix microseconds.
--
-- headers is a JSON array of {name, sealed | env}: a value is sealed with the
-- daemon's key (the scope and server name are its additional data) or names
-- an OPENINTERN_MCP_SECRET_* environment variable; never a clear value.
CREATE TABLE mcp_servers (
    org_id     TEXT NOT NULL,
    project_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    url        TEXT NOT NULL,
    transport  TEXT NOT NULL,
    headers    TEXT NOT NULL DEFAULT '[]',
    created_by TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, project_id, name)
) STRICT;

-- Pins gain the scope of their server: ('', '') for the config file's
-- servers, the org and project for a tenant's. SQLite cannot change a
-- primary key in place, so the table is rebuilt.
CREATE TABLE mcp_tool_pins_scoped (
    org_id             TEXT NOT NULL DEFAULT '',
    project_id         TEXT NOT NULL DEFAULT '',
    server             TEXT NOT NULL,
    tool               TEXT NOT NULL,
    hash               TEXT NOT NULL,
    definition         TEXT NOT NULL,
    pending_hash       TEXT NOT NULL DEFAULT '',
    pending_definition TEXT NOT NULL DEFAULT '',
    pinned_at          INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (org_id, project_id, server, tool)
) STRICT;
INSERT INTO mcp_tool_pins_scoped (server, tool, hash, definition, pending_hash, pending_definition, pinned_at, updated_at)
    SELECT server, tool, hash, definition, pending_hash, pending_definition, pinned_at, updated_at FROM mcp_tool_pins;
DROP TABLE mcp_tool_pins;
ALTER TABLE mcp_tool_pins_scoped RENAME TO mcp_tool_pins;

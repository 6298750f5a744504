-- 0022_mcp_tenant_servers: HTTP MCP servers a tenant adds for its own scope
-- (an org's project), and pins kept per scope.
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
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, project_id, name)
);

-- Pins gain the scope of their server: ('', '') for the config file's
-- servers, the org and project for a tenant's.
ALTER TABLE mcp_tool_pins
    ADD COLUMN org_id TEXT NOT NULL DEFAULT '',
    ADD COLUMN project_id TEXT NOT NULL DEFAULT '';
ALTER TABLE mcp_tool_pins DROP CONSTRAINT mcp_tool_pins_pkey;
ALTER TABLE mcp_tool_pins ADD PRIMARY KEY (org_id, project_id, server, tool);

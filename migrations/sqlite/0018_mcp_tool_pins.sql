-- 0018_mcp_tool_pins: the trusted definition of each MCP server's tool.
--
-- A tool is pinned (hash of its name, description and input schema) when
-- first seen; a later, different definition waits in pending_* and the tool
-- stays disabled until an admin approves it. Servers come from the daemon's
-- config file, so pins are daemon-wide. Times are Unix microseconds.
CREATE TABLE mcp_tool_pins (
    server             TEXT NOT NULL,
    tool               TEXT NOT NULL,
    hash               TEXT NOT NULL,
    definition         TEXT NOT NULL,
    pending_hash       TEXT NOT NULL DEFAULT '',
    pending_definition TEXT NOT NULL DEFAULT '',
    pinned_at          INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (server, tool)
) STRICT;

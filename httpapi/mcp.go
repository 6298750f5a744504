package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools/mcptools"
)

// MCPServers are the daemon's MCP servers (mcptools.Manager). They come from
// the config file and are daemon-wide: every scope sees the same ones, and
// only their names, status and tools, never a command, env, URL or header.
type MCPServers interface {
	Servers() []mcptools.ServerStatus
	Server(name string) (mcptools.ServerStatus, bool)
	Approve(ctx context.Context, server, tool, hash string) (mcptools.ToolStatus, error)
}

// MountMCP adds the /api/mcp routes; a daemon without MCP servers has none.
func (s *Server) MountMCP(servers MCPServers) {
	api := s.apiGroup()
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/mcp/servers", Role: auth.RoleViewer,
		Summary: "List the configured MCP servers: transport, status, last error, tools and their pins"},
		func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"servers": servers.Servers()}) })
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/mcp/servers/:name", Role: auth.RoleViewer,
		Summary: "One MCP server: transport, status, last error, tools and their pins"},
		func(c *gin.Context) {
			st, ok := servers.Server(c.Param("name"))
			if !ok {
				writeError(c, http.StatusNotFound, "not_found", "mcp server not found")
				return
			}
			c.JSON(http.StatusOK, st)
		})
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/mcp/servers/:name/tools/:tool/approve", Role: auth.RoleAdmin,
		Summary: "Trust the changed definition of an MCP tool (optionally only the one with the given hash), enabling the tool"},
		func(c *gin.Context) { s.approveMCPTool(c, servers) })
}

type approveMCPToolRequest struct {
	// Hash, when set, must be the pending definition's: an admin approves
	// what was shown, not whatever the server offers by now.
	Hash string `json:"hash"`
	// The scope fields may be in the body, as on every route.
	OrgID     string `json:"org_id"`
	UserID    string `json:"user_id"`
	ProjectID string `json:"project_id"`
}

func (s *Server) approveMCPTool(c *gin.Context, servers MCPServers) {
	var req approveMCPToolRequest
	if c.Request.ContentLength != 0 && !bindJSON(c, &req) {
		return
	}
	ts, err := servers.Approve(c.Request.Context(), c.Param("name"), c.Param("tool"), req.Hash)
	switch {
	case errors.Is(err, mcptools.ErrUnknownServer):
		writeError(c, http.StatusNotFound, "not_found", "mcp server not found")
	case errors.Is(err, store.ErrNotFound):
		writeError(c, http.StatusNotFound, "not_found", "mcp tool not found (never listed by the server)")
	case errors.Is(err, store.ErrNothingPending):
		writeError(c, http.StatusConflict, "nothing_pending", "the tool's definition has not changed since it was pinned")
	case errors.Is(err, store.ErrConflict):
		writeError(c, http.StatusConflict, "hash_mismatch", "another definition of the tool is waiting for approval than the one with this hash")
	case err != nil:
		s.fail(c, err, "mcp tool")
	default:
		c.JSON(http.StatusOK, ts)
	}
}

package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/secrets"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools/mcptools"
)

// MCPServers are the daemon's MCP servers (mcptools.Manager): the config
// file's, which every scope sees, and the ones a scope's admins added for
// it. Only names, status, tools, a tenant server's redacted URL and its
// headers' names are shown: never a command, env or header value.
type MCPServers interface {
	ServersIn(ctx context.Context, scope store.Scope) ([]mcptools.ServerStatus, error)
	ServerIn(ctx context.Context, scope store.Scope, name string) (mcptools.ServerStatus, error)
	ApproveIn(ctx context.Context, scope store.Scope, server, tool, hash string) (mcptools.ToolStatus, error)
	AddServer(ctx context.Context, scope store.Scope, req mcptools.NewServer) (mcptools.ServerStatus, error)
	RemoveServer(ctx context.Context, scope store.Scope, name string) error
	GrantNamesIn(ctx context.Context, scope store.Scope) []string
}

type mcpServerList struct {
	Servers []mcptools.ServerStatus `json:"servers"`
}

// MountMCP adds the /api/mcp routes; a daemon without MCP servers has none.
func (s *Server) MountMCP(servers MCPServers) {
	s.mcpGrants = servers.GrantNamesIn
	api := s.apiGroup()
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/mcp/servers", Role: auth.RoleViewer,
		Summary:  "List the MCP servers: the config file's (source config) and the scope's own (source tenant), with status, last error, tools and their pins",
		Response: mcpServerList{}},
		func(c *gin.Context) {
			list, err := servers.ServersIn(c.Request.Context(), scopeOf(c))
			if err != nil {
				s.fail(c, err, "mcp servers")
				return
			}
			c.JSON(http.StatusOK, mcpServerList{Servers: list})
		})
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/mcp/servers", Role: auth.RoleAdmin, Status: http.StatusCreated,
		Summary: "Add an HTTP MCP server for this scope (org and project): header values are sealed or read from OPENINTERN_MCP_SECRET_* variables, and never shown again",
		Body:    addMCPServerBody{}, Response: mcptools.ServerStatus{}, Errors: []int{http.StatusConflict, http.StatusServiceUnavailable}},
		func(c *gin.Context) { s.addMCPServer(c, servers) })
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/mcp/servers/:name", Role: auth.RoleViewer,
		Summary:  "One MCP server (the scope's own first, then the config file's): status, last error, tools and their pins",
		Response: mcptools.ServerStatus{}},
		func(c *gin.Context) {
			st, err := servers.ServerIn(c.Request.Context(), scopeOf(c), c.Param("name"))
			if err != nil {
				s.failMCP(c, err)
				return
			}
			c.JSON(http.StatusOK, st)
		})
	s.register(api, routeSpec{Method: http.MethodDelete, Path: "/mcp/servers/:name", Role: auth.RoleAdmin, Status: http.StatusNoContent,
		Summary: "Remove one of the scope's MCP servers and stop it (the config file's cannot be removed: 409 config_server)",
		Errors:  []int{http.StatusConflict}},
		func(c *gin.Context) {
			if err := servers.RemoveServer(c.Request.Context(), scopeOf(c), c.Param("name")); err != nil {
				s.failMCP(c, err)
				return
			}
			c.Status(http.StatusNoContent)
		})
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/mcp/servers/:name/tools/:tool/approve", Role: auth.RoleAdmin,
		Summary: "Trust the changed definition of an MCP tool (optionally only the one with the given hash), enabling the tool",
		Body:    approveMCPToolRequest{}, Response: mcptools.ToolStatus{}, Errors: []int{http.StatusConflict}},
		func(c *gin.Context) { s.approveMCPTool(c, servers) })
}

// addMCPServerBody is POST /api/mcp/servers. A header is "value" (sealed
// with the daemon's key) or {"env": "OPENINTERN_MCP_SECRET_X"}.
type addMCPServerBody struct {
	Name      string                     `json:"name"`
	URL       string                     `json:"url"`
	Transport string                     `json:"transport,omitempty"`
	Headers   map[string]json.RawMessage `json:"headers,omitempty"`
	OrgID     string                     `json:"org_id,omitempty"`
	UserID    string                     `json:"user_id,omitempty"`
	ProjectID string                     `json:"project_id,omitempty"`
}

func (s *Server) addMCPServer(c *gin.Context, servers MCPServers) {
	var body addMCPServerBody
	if !bindJSON(c, &body) {
		return
	}
	sc := scopeOf(c)
	req := mcptools.NewServer{Name: body.Name, URL: body.URL, Transport: body.Transport, CreatedBy: sc.UserID,
		Headers: make(map[string]mcptools.HeaderValue, len(body.Headers))}
	for name, raw := range body.Headers {
		var v mcptools.HeaderValue
		raw = bytes.TrimSpace(raw)
		var ref struct {
			Env string `json:"env"`
		}
		switch {
		case len(raw) > 0 && raw[0] == '"':
			if err := json.Unmarshal(raw, &v.Value); err != nil {
				writeError(c, http.StatusBadRequest, "bad_header", "header "+cutName(name)+": not a JSON string")
				return
			}
		case len(raw) > 0 && raw[0] == '{':
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ref); err != nil || ref.Env == "" {
				writeError(c, http.StatusBadRequest, "bad_header", "header "+cutName(name)+`: an object must be {"env": "OPENINTERN_MCP_SECRET_..."}`)
				return
			}
			v.Env = ref.Env
		default:
			writeError(c, http.StatusBadRequest, "bad_header", "header "+cutName(name)+`: give a string value or {"env": "OPENINTERN_MCP_SECRET_..."}`)
			return
		}
		req.Headers[name] = v
	}
	st, err := servers.AddServer(c.Request.Context(), sc, req)
	if err != nil {
		s.failMCP(c, err)
		return
	}
	c.JSON(http.StatusCreated, st)
}

// cutName shortens a header name the client sent for an error message.
func cutName(name string) string {
	if len(name) > 64 {
		return name[:64] + "…"
	}
	return name
}

// failMCP answers an error of the MCP servers' routes. Messages never hold
// a header value: the manager's errors name headers, not their values.
func (s *Server) failMCP(c *gin.Context, err error) {
	var in *mcptools.InputError
	switch {
	case errors.As(err, &in):
		writeError(c, http.StatusBadRequest, in.Code, in.Message)
	case errors.Is(err, mcptools.ErrUnknownServer):
		writeError(c, http.StatusNotFound, "not_found", "mcp server not found")
	case errors.Is(err, mcptools.ErrConfigServer):
		writeError(c, http.StatusConflict, "config_server", "the server comes from the daemon's config file and cannot be removed over the API")
	case errors.Is(err, mcptools.ErrNameTaken):
		writeError(c, http.StatusConflict, "name_taken", "an MCP server of that name exists (the scope's own or the config file's)")
	case errors.Is(err, mcptools.ErrTenantsOff):
		writeError(c, http.StatusServiceUnavailable, "mcp_tenants_off", err.Error())
	case errors.Is(err, secrets.ErrNoKey):
		writeError(c, http.StatusServiceUnavailable, "secret_key_missing",
			"header values cannot be sealed: the daemon has no secret key; an operator must set "+secrets.KeyEnv+
				" (base64 of 32 random bytes), or give the header as {\"env\": \"OPENINTERN_MCP_SECRET_...\"}")
	default:
		s.fail(c, err, "mcp server")
	}
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
	ts, err := servers.ApproveIn(c.Request.Context(), scopeOf(c), c.Param("name"), c.Param("tool"), req.Hash)
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

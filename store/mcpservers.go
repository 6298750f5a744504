package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MCPServer is an HTTP MCP server a tenant added for its own scope over the
// API. It belongs to an org's project (every user of the project shares it);
// its tools are visible and callable only there. Header values are never kept
// in clear: each is sealed (see package secrets) or names an environment
// variable of the daemon.
type MCPServer struct {
	OrgID     string `json:"org_id"`
	ProjectID string `json:"project_id"`
	Name      string `json:"name"`
	URL       string `json:"url"`
	// Transport is streamable, sse or auto (streamable, falling back to SSE).
	Transport string      `json:"transport"`
	Headers   []MCPHeader `json:"headers"`
	CreatedBy string      `json:"created_by"`
	CreatedAt time.Time   `json:"created_at"`
}

// MCPHeader is one request header of a tenant server: exactly one of Sealed
// (the value sealed with the daemon's key, base64) and Env (the name of the
// environment variable holding it) is set.
type MCPHeader struct {
	Name   string `json:"name"`
	Sealed string `json:"sealed,omitempty"`
	Env    string `json:"env,omitempty"`
}

// Transports of a tenant server.
const (
	MCPTransportStreamable = "streamable"
	MCPTransportSSE        = "sse"
	MCPTransportAuto       = "auto"
)

// MCPServerStore keeps the tenant MCP servers and their tools' pins. The pins
// of a tenant server are its scope's: the same server name in two scopes (or
// a config server of that name) never shares a pin.
type MCPServerStore interface {
	// CreateMCPServer adds srv unless its scope already has one of that name
	// (ErrConflict) or maxPerScope servers (a *QuotaError; <= 0: no bound).
	CreateMCPServer(ctx context.Context, srv MCPServer, maxPerScope int) (MCPServer, error)
	// GetMCPServer returns a scope's server; ErrNotFound if it has none of that name.
	GetMCPServer(ctx context.Context, scope Scope, name string) (MCPServer, error)
	// ListMCPServers lists a scope's servers by name.
	ListMCPServers(ctx context.Context, scope Scope) ([]MCPServer, error)
	// ListAllMCPServers lists every scope's servers (what the daemon may start).
	ListAllMCPServers(ctx context.Context) ([]MCPServer, error)
	// DeleteMCPServer removes a scope's server and its pins; ErrNotFound if none.
	DeleteMCPServer(ctx context.Context, scope Scope, name string) error

	// ObserveScopedMCPTool, ListScopedMCPToolPins and ApproveScopedMCPTool
	// are MCPPinStore's methods for a tenant server of scope.
	ObserveScopedMCPTool(ctx context.Context, scope Scope, server, tool, hash string, def json.RawMessage) (MCPToolPin, error)
	ListScopedMCPToolPins(ctx context.Context, scope Scope, server string) ([]MCPToolPin, error)
	ApproveScopedMCPTool(ctx context.Context, scope Scope, server, tool, hash string) (MCPToolPin, error)
}

// QuotaMCPServers names the quota of tenant MCP servers per scope.
const QuotaMCPServers = "mcp_servers"

// MCPScopeKey is the part of a scope a tenant server and its pins belong to:
// the org and the project, not the user. Config servers' pins have the
// empty key, which no tenant scope has (an org id is never empty).
func MCPScopeKey(s Scope) (org, project string) { return s.OrgID, s.ProjectID }

// CheckMCPServer refuses a record the stores must not keep.
func CheckMCPServer(srv MCPServer) error {
	if srv.OrgID == "" || srv.Name == "" || srv.URL == "" {
		return errors.New("mcp server: org, name and url are required")
	}
	switch srv.Transport {
	case MCPTransportStreamable, MCPTransportSSE, MCPTransportAuto:
	default:
		return fmt.Errorf("mcp server: unknown transport %q", srv.Transport)
	}
	for _, h := range srv.Headers {
		if h.Name == "" || (h.Sealed == "") == (h.Env == "") {
			return fmt.Errorf("mcp server: header %q must be either sealed or an env reference", h.Name)
		}
	}
	return nil
}

// EncodeMCPHeaders is the headers column's text (never with a clear value).
func EncodeMCPHeaders(h []MCPHeader) (string, error) {
	if h == nil {
		h = []MCPHeader{}
	}
	b, err := json.Marshal(h)
	return string(b), err
}

// DecodeMCPHeaders reads the headers column.
func DecodeMCPHeaders(s string) ([]MCPHeader, error) {
	h := []MCPHeader{}
	if s == "" {
		return h, nil
	}
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		return nil, fmt.Errorf("mcp server headers: %w", err)
	}
	return h, nil
}

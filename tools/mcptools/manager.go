// Package mcptools connects the daemon to Model Context Protocol servers
// (github.com/mark3labs/mcp-go's client) and puts their tools in the tool
// registry as <server>__<tool>, so agents and roles are granted them like any
// tool (a whole server with <server>__*). It lives under tools, beside
// teamtools, because it is one more source of tools for the registry and
// needs nothing of the daemon but the registry and the store.
//
// Each configured server has a supervisor goroutine: it connects (a stdio
// server is started as a child process; an HTTP server is reached over
// streamable HTTP, or the older SSE transport when it does not speak that),
// lists the tools, pins each definition in the store and registers the ones
// whose definition is trusted, then waits. When the server dies it is
// restarted with a backoff that doubles up to a cap; a server that cannot be
// reached is reported as failed and retried the same way, and never holds up
// the daemon's start. notifications/tools/list_changed makes it list again.
package mcptools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// Registrar is the part of the tool registry the manager uses.
type Registrar interface {
	Register(t tools.Tool) error
	Unregister(name string) bool
}

// registrar is where a server's tools go: the registry, or a scope's overlay.
type registrar interface {
	Register(t tools.Tool) error
	Unregister(name string) bool
}

// pinObserver is where a server's pins go: the daemon-wide ones, or a scope's.
type pinObserver interface {
	ObserveMCPTool(ctx context.Context, server, tool, hash string, def json.RawMessage) (store.MCPToolPin, error)
}

// Config is what a Manager needs.
type Config struct {
	Servers  map[string]config.MCPServer
	Registry Registrar
	Pins     store.MCPPinStore
	Logger   *slog.Logger
	// CallTimeout bounds one tool call (default 60 s).
	CallTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a restart (default 250 ms, 30 s).
	MinBackoff, MaxBackoff time.Duration
	// ConnectTimeout bounds starting a server and listing its tools (default 60 s:
	// npx may have to unpack a package first).
	ConnectTimeout time.Duration
	// Tenants, when set, lets tenants add HTTP servers for their own scope
	// (see tenant.go); nil: only the config file's servers.
	Tenants *TenantConfig
}

// Manager runs the configured MCP servers. Start starts them; Close stops them.
type Manager struct {
	cfg     Config
	logger  *slog.Logger
	servers map[string]*server // fixed at New

	life    context.Context
	endLife context.CancelFunc
	wg      sync.WaitGroup
	started bool

	tenants tenants
}

// Server statuses.
const (
	StatusStarting = "starting"
	StatusRunning  = "running"
	StatusStopped  = "stopped"
	StatusFailed   = "failed"
	StatusDisabled = "disabled"
)

// Pin states of a tool.
const (
	PinTrusted = "pinned"  // the definition is the pinned one: the tool is enabled
	PinChanged = "changed" // the definition changed since it was pinned: disabled until approved
	PinInvalid = "invalid" // the tool cannot be offered (bad name or schema)
)

// ServerStatus is what the API shows of a server: no command, env, URL or
// headers, which may hold secrets.
type ServerStatus struct {
	Name      string       `json:"name"`
	Transport string       `json:"transport"`
	Status    string       `json:"status"`
	LastError string       `json:"last_error,omitempty"`
	Restarts  int          `json:"restarts"`
	Tools     []ToolStatus `json:"tools"`
	// Source is config (the daemon's file, every scope) or tenant (added
	// over the API for this scope).
	Source string `json:"source"`
	// A tenant server's URL (without query or fragment, which may hold a
	// token), its headers' names and kinds (never a value), creator and time.
	URL       string       `json:"url,omitempty"`
	Headers   []HeaderInfo `json:"headers,omitempty"`
	CreatedBy string       `json:"created_by,omitempty"`
	CreatedAt *time.Time   `json:"created_at,omitempty"`
}

// HeaderInfo is what the API shows of a tenant server's header: its name,
// whether its value is sealed or read from the environment, and which
// variable; never the value.
type HeaderInfo struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // sealed or env
	Env  string `json:"env,omitempty"`
}

// Sources of a server.
const (
	SourceConfig = "config"
	SourceTenant = "tenant"
)

// ToolStatus is one tool of a server and its pin.
type ToolStatus struct {
	Name        string `json:"name"`      // the server's name for it
	ToolName    string `json:"tool_name"` // the registry's: <server>__<name>
	Description string `json:"description"`
	Enabled     bool   `json:"enabled"`
	Pin         string `json:"pin"`
	Hash        string `json:"hash"` // of the definition the server offers now
	PinnedHash  string `json:"pinned_hash,omitempty"`
	Problem     string `json:"problem,omitempty"`
}

// New checks the configuration; nothing starts before Start.
func New(cfg Config) (*Manager, error) {
	if cfg.Registry == nil || cfg.Pins == nil {
		return nil, errors.New("mcptools: a registry and a pin store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 60 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 60 * time.Second
	}
	m := &Manager{cfg: cfg, logger: cfg.Logger, servers: make(map[string]*server, len(cfg.Servers))}
	m.life, m.endLife = context.WithCancel(context.Background())
	if err := m.initTenants(); err != nil {
		return nil, err
	}
	for name, sc := range cfg.Servers {
		if !config.ValidMCPServerName(name) {
			return nil, fmt.Errorf("mcptools: invalid server name %q", name)
		}
		m.servers[name] = newServer(m, name, sc)
	}
	return m, nil
}

// Start starts each enabled server's supervisor in the background and
// returns at once: a slow or broken server never delays the daemon.
func (m *Manager) Start() {
	if m.started {
		return
	}
	m.started = true
	m.startTenants()
	for _, s := range m.servers {
		if s.cfg.Disabled {
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			s.supervise(m.life)
		}()
	}
}

// Close stops every server (a stdio server's process group is terminated)
// and waits for the supervisors to end, or for ctx.
func (m *Manager) Close(ctx context.Context) error {
	// Under the tenants' lock, so no tenant server starts once life ended.
	m.tenants.mu.Lock()
	m.endLife()
	m.tenants.mu.Unlock()
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mcptools: close: servers still stopping: %w", ctx.Err())
	}
}

// GrantNames are the names an agent or role may list besides the
// registered tools: "<server>__*" for each configured server (its tools
// may not be listed yet when the grant is made).
func (m *Manager) GrantNames() []string {
	names := make([]string, 0, len(m.servers))
	for name := range m.servers {
		names = append(names, name+tools.GroupSeparator+"*")
	}
	sort.Strings(names)
	return names
}

// ToolInfo is what the tool policy knows of a tool by its full name
// (<server>__<tool>) as its server last listed it; ok is false for a name
// that is no listed tool of a configured server.
func (m *Manager) ToolInfo(name string) (tools.ToolInfo, bool) {
	server, tool, ok := strings.Cut(name, tools.GroupSeparator)
	s, found := m.servers[server]
	if !ok || !found {
		return tools.ToolInfo{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.tools[tool]
	if !ok {
		return tools.ToolInfo{}, false
	}
	h := s.hintsOf(e.def)
	return tools.ToolInfo{Name: name, ReadOnly: h.ReadOnly != nil && *h.ReadOnly, MCP: &h}, true
}

// Servers returns the status of every configured server, by name.
func (m *Manager) Servers() []ServerStatus {
	out := make([]ServerStatus, 0, len(m.servers))
	for _, name := range slices.Sorted(maps.Keys(m.servers)) {
		out = append(out, m.servers[name].status())
	}
	return out
}

// Server returns one server's status.
func (m *Manager) Server(name string) (ServerStatus, bool) {
	s, ok := m.servers[name]
	if !ok {
		return ServerStatus{}, false
	}
	return s.status(), true
}

// ErrUnknownServer and ErrUnknownTool: nothing of that name is configured or offered.
var (
	ErrUnknownServer = fmt.Errorf("mcp server not configured: %w", store.ErrNotFound)
	ErrUnknownTool   = fmt.Errorf("mcp tool not offered by the server: %w", store.ErrNotFound)
)

// Approve trusts the changed definition of a server's tool (hash, when not
// "", must be the one pending) and enables the tool at once if the server
// still offers that definition.
func (m *Manager) Approve(ctx context.Context, serverName, tool, hash string) (ToolStatus, error) {
	s, ok := m.servers[serverName]
	if !ok {
		return ToolStatus{}, ErrUnknownServer
	}
	pin, err := m.cfg.Pins.ApproveMCPTool(ctx, serverName, tool, hash)
	if err != nil {
		return ToolStatus{}, err
	}
	m.logger.Info("mcp tool definition approved", "server", serverName, "tool", tool, "hash", pin.Hash)
	ts := s.applyPin(tool, pin.Hash)
	// A listing that read the pin before the approval may be about to
	// replace the entry: list once more, which reads the approved pin.
	select {
	case s.relist <- struct{}{}:
	default:
	}
	return ts, nil
}

package mcptools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/tools"
)

// resetAfter: a connection that lived this long resets the backoff, so a
// server that crashes now and then restarts fast, one that crashes at once
// does not spin.
const resetAfter = 30 * time.Second

// server is one configured MCP server and its supervisor's state.
type server struct {
	m    *Manager
	name string
	cfg  config.MCPServer

	// What differs between a config server and a tenant's: where its tools
	// and pins go, how it dials (a tenant's through the address guard), and
	// its request headers (a tenant's are opened from their sealed form at
	// each connect, never kept in cfg).
	sink       registrar
	pins       pinObserver
	client     *http.Client // nil: the default client
	noFallback bool         // streamable HTTP only, no SSE fallback
	headers    func() (map[string]string, error)
	tenant     *tenantServer // nil for a config server

	relist chan struct{} // notifications/tools/list_changed, coalesced

	mu        sync.Mutex
	state     string
	lastErr   string
	restarts  int
	transport string            // the one in use: stdio, http or sse
	conn      *conn             // nil when not connected
	ready     chan struct{}     // closed while conn is usable; replaced when it goes
	tools     map[string]*entry // by the server's tool name, from the last listing
	halted    bool              // a tenant server stopped for good: registers nothing more
}

// entry is a tool as last listed and what became of it.
type entry struct {
	def        mcp.Tool
	canonical  json.RawMessage
	schema     json.RawMessage
	hash       string
	pinnedHash string
	problem    string
	registered bool
}

func newServer(m *Manager, name string, cfg config.MCPServer) *server {
	s := &server{m: m, name: name, cfg: cfg, relist: make(chan struct{}, 1), ready: make(chan struct{}),
		tools: map[string]*entry{}, state: StatusStopped, transport: cfg.Transport(), sink: m.cfg.Registry, pins: m.cfg.Pins}
	if cfg.Disabled {
		s.state = StatusDisabled
	}
	return s
}

func (s *server) logf(msg string, args ...any) {
	s.m.logger.Warn(msg, append(s.logAttrs(), args...)...)
}

// supervise connects, serves and restarts with backoff until ctx ends.
func (s *server) supervise(ctx context.Context) {
	backoff := s.m.cfg.MinBackoff
	for {
		s.setState(StatusStarting, "")
		started := time.Now()
		err := s.connectAndServe(ctx)
		if ctx.Err() != nil {
			s.setState(StatusStopped, "")
			return
		}
		if time.Since(started) >= resetAfter {
			backoff = s.m.cfg.MinBackoff
		}
		s.logf("mcp server failed; restarting", "error", err, "backoff", backoff)
		s.mu.Lock()
		s.state, s.lastErr = StatusFailed, err.Error()
		s.restarts++
		s.mu.Unlock()
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			s.setState(StatusStopped, "")
			return
		case <-t.C:
		}
		backoff = min(backoff*2, s.m.cfg.MaxBackoff)
	}
}

func (s *server) setState(state, lastErr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = state
	if lastErr != "" {
		s.lastErr = lastErr
	}
}

// connectAndServe runs one connection: it returns why it ended.
func (s *server) connectAndServe(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, s.m.cfg.ConnectTimeout)
	c, err := s.connect(ctx, cctx)
	if err != nil {
		cancel()
		return err
	}
	defer c.close()
	err = s.sync(cctx, c)
	cancel()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.conn, s.state, s.lastErr, s.transport = c, StatusRunning, "", c.transport
	close(s.ready)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.conn, s.ready = nil, make(chan struct{})
		s.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.dead:
			return c.deadErr()
		case <-s.relist:
			lctx, cancel := context.WithTimeout(ctx, s.m.cfg.ConnectTimeout)
			err := s.sync(lctx, c)
			cancel()
			if err != nil && ctx.Err() == nil {
				s.logf("mcp server: listing tools after tools/list_changed failed", "error", err)
			}
		}
	}
}

// onNotification runs on the transport's reader: it must not block.
func (s *server) onNotification(n mcp.JSONRPCNotification) {
	if n.Method == mcp.MethodNotificationToolsListChanged {
		select {
		case s.relist <- struct{}{}:
		default:
		}
	}
}

// sync lists the server's tools, pins each definition and makes the
// registry hold exactly the tools whose definition is trusted.
func (s *server) sync(ctx context.Context, c *conn) error {
	res, err := c.client.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return fmt.Errorf("list tools: %w", err)
	}
	listed := make(map[string]*entry, len(res.Tools))
	for _, t := range res.Tools {
		e := &entry{def: t}
		listed[t.Name] = e
		if !tools.ValidToolName(s.toolName(t.Name)) {
			e.problem = "the name does not make a valid tool name (1-64 of a-z A-Z 0-9 _ -, with the server's prefix)"
			continue
		}
		if e.canonical, e.schema, err = definition(t); err != nil {
			e.problem = err.Error()
			continue
		}
		e.hash = hashOf(e.canonical)
		pin, err := s.pins.ObserveMCPTool(ctx, s.name, t.Name, e.hash, e.canonical)
		if err != nil {
			return fmt.Errorf("pin tool %q: %w", t.Name, err)
		}
		e.pinnedHash = pin.Hash
		if pin.Hash != e.hash {
			s.logf("mcp tool definition changed since it was pinned; disabled until an admin approves it",
				"tool", t.Name, "pinned", pin.Hash, "offered", e.hash)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, old := range s.tools {
		if n, ok := listed[name]; ok && old.registered && n.hash == old.hash && n.pinnedHash == n.hash {
			n.registered = true // unchanged: keep the registered tool
			continue
		}
		if old.registered {
			s.sink.Unregister(s.toolName(name))
		}
	}
	for _, e := range listed {
		s.registerLocked(e)
	}
	s.tools = listed
	return nil
}

// registerLocked registers e if it is trusted and not registered yet.
func (s *server) registerLocked(e *entry) {
	if s.halted || e.registered || e.problem != "" || e.hash == "" || e.pinnedHash != e.hash {
		return
	}
	err := s.sink.Register(&mcpTool{srv: s, name: e.def.Name, hash: e.hash, hints: s.hintsOf(e.def), spec: llm.ToolSpec{
		Name: s.toolName(e.def.Name), Description: e.def.Description, Parameters: e.schema,
	}})
	if err != nil {
		e.problem = err.Error()
		s.logf("mcp tool not registered", "tool", e.def.Name, "error", err)
		return
	}
	e.registered = true
}

// applyPin takes an approved pin into the listing: the tool is registered
// if the server offers the approved definition.
func (s *server) applyPin(tool string, pinnedHash string) ToolStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.tools[tool]
	if !ok {
		return ToolStatus{Name: tool, ToolName: s.toolName(tool), Pin: PinTrusted, PinnedHash: pinnedHash}
	}
	e.pinnedHash = pinnedHash
	s.registerLocked(e)
	return s.toolStatusLocked(e)
}

func (s *server) toolName(tool string) string { return s.name + tools.GroupSeparator + tool }

func (s *server) status() ServerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ServerStatus{Name: s.name, Transport: s.transport, Status: s.state, LastError: s.lastErr, Restarts: s.restarts, Tools: []ToolStatus{}, Source: SourceConfig}
	for _, e := range s.tools {
		st.Tools = append(st.Tools, s.toolStatusLocked(e))
	}
	sort.Slice(st.Tools, func(i, j int) bool { return st.Tools[i].Name < st.Tools[j].Name })
	return st
}

func (s *server) toolStatusLocked(e *entry) ToolStatus {
	ts := ToolStatus{Name: e.def.Name, ToolName: s.toolName(e.def.Name), Description: e.def.Description,
		Enabled: e.registered, Hash: e.hash, PinnedHash: e.pinnedHash, Problem: e.problem}
	switch {
	case e.problem != "":
		ts.Pin = PinInvalid
	case e.hash == e.pinnedHash:
		ts.Pin = PinTrusted
	default:
		ts.Pin = PinChanged
	}
	return ts
}

// current waits until the server is connected (it may be restarting) and
// returns the connection, or ctx's error.
func (s *server) current(ctx context.Context) (*conn, error) {
	for {
		s.mu.Lock()
		c, ready, state, lastErr := s.conn, s.ready, s.state, s.lastErr
		s.mu.Unlock()
		if c != nil {
			return c, nil
		}
		if state == StatusDisabled {
			return nil, errors.New("the server is disabled")
		}
		select {
		case <-ready:
		case <-ctx.Done():
			if lastErr != "" {
				return nil, fmt.Errorf("server %s (%s): %w", state, lastErr, context.Cause(ctx))
			}
			return nil, fmt.Errorf("server %s: %w", state, context.Cause(ctx))
		}
	}
}

// trusted reports whether tool's current definition is still the one hash
// names and trusted: the registry entry may be a moment older than a listing.
func (s *server) trusted(tool, hash string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.tools[tool]
	return ok && e.hash == hash && e.pinnedHash == hash
}

// mcpTool is one server tool in the registry.
type mcpTool struct {
	srv   *server
	name  string
	hash  string
	hints tools.MCPHints
	spec  llm.ToolSpec
}

func (t *mcpTool) Spec() llm.ToolSpec { return t.spec }

// MCPHints are the tool's annotations as listed when it was registered, for
// the tool policy (tools.Hinted).
func (t *mcpTool) MCPHints() tools.MCPHints { return t.hints }

// hintsOf reads a listed tool's annotations. Annotated is false when the
// server gave none at all (no hint and no title).
func (s *server) hintsOf(def mcp.Tool) tools.MCPHints {
	a := def.Annotations
	return tools.MCPHints{
		Server:    s.name,
		Annotated: a.Title != "" || a.ReadOnlyHint != nil || a.DestructiveHint != nil || a.IdempotentHint != nil || a.OpenWorldHint != nil,
		ReadOnly:  a.ReadOnlyHint, Destructive: a.DestructiveHint, Idempotent: a.IdempotentHint, OpenWorld: a.OpenWorldHint,
	}
}

// Run calls the tool on the server. Its context is the run's (cancelled when
// the run is) bounded by the call timeout; a call that cannot reach the
// server waits for a restart within that time.
func (t *mcpTool) Run(ctx context.Context, call tools.Call) (tools.Result, error) {
	if !t.srv.trusted(t.name, t.hash) {
		return tools.Result{IsError: true, Content: fmt.Sprintf(
			"tool %q is disabled: its definition changed since it was pinned and an admin must approve the change", t.spec.Name)}, nil
	}
	t.srv.touch()
	ctx, cancel := context.WithTimeout(ctx, t.srv.m.cfg.CallTimeout)
	defer cancel()
	var args map[string]any
	if len(call.Args) > 0 {
		if err := json.Unmarshal(call.Args, &args); err != nil {
			return tools.Result{IsError: true, Content: "arguments are not a JSON object: " + err.Error()}, nil
		}
	}
	c, err := t.srv.current(ctx)
	if err != nil {
		return tools.Result{IsError: true, Content: fmt.Sprintf("MCP server %q is not available: %v", t.srv.name, err)}, nil
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = t.name
	req.Params.Arguments = args
	res, err := c.client.CallTool(ctx, req)
	if err != nil {
		if ctx.Err() == nil {
			c.check() // a transport that failed is restarted
		}
		return tools.Result{IsError: true, Content: fmt.Sprintf("MCP server %q: %v", t.srv.name, err)}, nil
	}
	return tools.Result{Content: summarize(res), IsError: res.IsError}, nil
}

var _ tools.Hinted = (*mcpTool)(nil)

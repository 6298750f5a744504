package mcptools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/secrets"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// Tenant servers: HTTP MCP servers a tenant adds over the API for its own
// scope (an org's project). They run on the same supervisor as the config
// file's servers, with three differences: their tools go to the scope's
// overlay of the registry (no other scope sees or calls them), their pins
// are the scope's, and they dial through the address guard. They start on
// first use (the scope's agents' specs, or a call of one of their tools),
// stop after IdleTimeout without use (1,000 tenants must not hold 1,000
// connections), on DELETE and on shutdown.

// TenantConfig enables tenant servers.
type TenantConfig struct {
	Store    store.MCPServerStore
	Registry ScopedRegistrar
	// Sealer seals header values; nil: only env references are accepted
	// (a sealed header is refused with secrets.ErrNoKey).
	Sealer *secrets.Sealer
	// Guard dials every tenant URL (no loopback, private or metadata
	// address unless allow-listed).
	Guard *tools.AddrGuard
	// IdleTimeout stops a server unused this long (default 10 min).
	IdleTimeout time.Duration
	// MaxPerScope bounds the servers of a scope (default 20).
	MaxPerScope int
	// StartWait is how long a first use waits for the scope's servers to
	// list their tools (default 10 s); a slower one joins a later turn.
	StartWait time.Duration
	// Refresh is how long a scope's server list is trusted before it is read
	// again (default 30 s), for servers another daemon added or removed.
	Refresh time.Duration
	// LookupEnv reads env references (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
}

// ScopedRegistrar is the registry's scope overlay.
type ScopedRegistrar interface {
	RegisterScoped(key string, t tools.Tool) error
	UnregisterScoped(key, name string) bool
}

// Errors of the tenant server API.
var (
	// ErrTenantsOff: the daemon does not take tenant servers.
	ErrTenantsOff = errors.New("tenant MCP servers are not enabled on this daemon")
	// ErrConfigServer: the server is the config file's; the API cannot remove it.
	ErrConfigServer = fmt.Errorf("the server comes from the daemon's config file: %w", store.ErrConflict)
	// ErrNameTaken: a config server or another of the scope's has the name.
	ErrNameTaken = fmt.Errorf("an MCP server of that name exists: %w", store.ErrConflict)
)

// InputError is a refused request: Code is the API's error code.
type InputError struct {
	Code, Message string
}

func (e *InputError) Error() string { return e.Message }

func badInput(code, format string, args ...any) error {
	return &InputError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// HeaderValue is one header of a new server: a Value to seal, or the Env
// variable (OPENINTERN_MCP_SECRET_*) to read it from.
type HeaderValue struct {
	Value string
	Env   string
}

// NewServer is what a tenant asks for.
type NewServer struct {
	Name      string
	URL       string
	Transport string // streamable, sse or auto ("": auto)
	Headers   map[string]HeaderValue
	CreatedBy string
}

// Limits of a tenant server's request.
const (
	maxURLBytes      = 2048
	maxHeaders       = 32
	maxHeaderValue   = 8 << 10
	maxHeaderNameLen = 128
)

var headerNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1," + fmt.Sprint(maxHeaderNameLen) + "}$")

// reservedHeaders are set by the transport; a tenant's value would break
// the protocol or smuggle a request.
var reservedHeaders = []string{"host", "content-length", "content-type", "transfer-encoding", "connection", "upgrade",
	"te", "trailer", "accept", "mcp-session-id", "mcp-protocol-version", "last-event-id", "proxy-authorization"}

type tenants struct {
	cfg     *TenantConfig
	mu      sync.Mutex
	running map[string]map[string]*server // by tools.ScopeKey, then name
	loaded  map[string]loadedScope
}

type loadedScope struct {
	at   time.Time
	recs []store.MCPServer
}

// tenantServer is what a server object knows of its tenant.
type tenantServer struct {
	scope    store.Scope
	rec      store.MCPServer
	stop     context.CancelFunc
	done     chan struct{}
	lastUsed atomic.Int64 // unix nanoseconds
	inFlight atomic.Int32
}

func (m *Manager) initTenants() error {
	tc := m.cfg.Tenants
	if tc == nil {
		return nil
	}
	if tc.Store == nil || tc.Registry == nil || tc.Guard == nil {
		return errors.New("mcptools: tenant servers need a store, a scoped registry and an address guard")
	}
	if tc.IdleTimeout <= 0 {
		tc.IdleTimeout = 10 * time.Minute
	}
	if tc.MaxPerScope <= 0 {
		tc.MaxPerScope = 20
	}
	if tc.StartWait <= 0 {
		tc.StartWait = 10 * time.Second
	}
	if tc.Refresh <= 0 {
		tc.Refresh = 30 * time.Second
	}
	m.tenants = tenants{cfg: tc, running: map[string]map[string]*server{}, loaded: map[string]loadedScope{}}
	return nil
}

// startTenants starts the idle reaper.
func (m *Manager) startTenants() {
	tc := m.tenants.cfg
	if tc == nil {
		return
	}
	every := max(min(tc.IdleTimeout/4, time.Minute), 10*time.Millisecond)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-m.life.Done():
				return
			case <-t.C:
				m.stopIdle(time.Now().Add(-tc.IdleTimeout))
			}
		}
	}()
}

// stopIdle stops the servers unused since before and not in a call.
func (m *Manager) stopIdle(before time.Time) {
	t := &m.tenants
	var idle []*server
	t.mu.Lock()
	for key, run := range t.running {
		for name, s := range run {
			if s.tenant.inFlight.Load() == 0 && s.tenant.lastUsed.Load() < before.UnixNano() {
				idle = append(idle, s)
				delete(run, name)
			}
		}
		if len(run) == 0 {
			delete(t.running, key)
		}
	}
	t.mu.Unlock()
	for _, s := range idle {
		m.logger.Info("mcp server idle; stopped until next used", s.logAttrs()...)
		s.halt()
	}
}

func (s *server) logAttrs() []any {
	if s.tenant == nil {
		return []any{"mcp_server", s.name}
	}
	return []any{"mcp_server", s.name, "org_id", s.tenant.scope.OrgID, "project_id", s.tenant.scope.ProjectID}
}

// touch marks a tenant server used (a no-op for a config server).
func (s *server) touch() {
	if s.tenant != nil {
		s.tenant.lastUsed.Store(time.Now().UnixNano())
	}
}

// halt stops a tenant server's supervisor, waits for it and takes its
// tools out of the scope's overlay.
func (s *server) halt() {
	s.tenant.stop()
	<-s.tenant.done
	s.mu.Lock()
	defer s.mu.Unlock()
	// An approval racing the stop must not put a tool back afterwards.
	s.halted = true
	for name, e := range s.tools {
		if e.registered {
			s.sink.Unregister(s.toolName(name))
			e.registered = false
		}
	}
	s.state = StatusStopped
}

// scopedSink puts a tenant server's tools in its scope's overlay.
type scopedSink struct {
	reg ScopedRegistrar
	key string
}

func (k scopedSink) Register(t tools.Tool) error { return k.reg.RegisterScoped(k.key, t) }
func (k scopedSink) Unregister(name string) bool { return k.reg.UnregisterScoped(k.key, name) }

// scopedPins keeps a tenant server's pins in its scope.
type scopedPins struct {
	st    store.MCPServerStore
	scope store.Scope
}

func (p scopedPins) ObserveMCPTool(ctx context.Context, server, tool, hash string, def json.RawMessage) (store.MCPToolPin, error) {
	return p.st.ObserveScopedMCPTool(ctx, p.scope, server, tool, hash, def)
}

// headerOwner binds a sealed header value to its scope, server and header.
func headerOwner(org, project, server, header string) string {
	return secrets.Owner("mcp-header", org, project, server, strings.ToLower(header))
}

func (m *Manager) newTenantServer(scope store.Scope, rec store.MCPServer) *server {
	tc := m.tenants.cfg
	cfg := config.MCPServer{URL: rec.URL, Type: config.MCPHTTP}
	if rec.Transport == store.MCPTransportSSE {
		cfg.Type = config.MCPSSE
	}
	s := newServer(m, rec.Name, cfg)
	s.sink = scopedSink{reg: tc.Registry, key: tools.ScopeKey(scope)}
	s.pins = scopedPins{st: tc.Store, scope: scope}
	s.client = tc.Guard.Client()
	s.noFallback = rec.Transport == store.MCPTransportStreamable
	s.tenant = &tenantServer{scope: scope, rec: rec, done: make(chan struct{})}
	s.touch()
	headers := slices.Clone(rec.Headers)
	s.headers = func() (map[string]string, error) {
		out := make(map[string]string, len(headers))
		for _, h := range headers {
			switch {
			case h.Env != "":
				v, err := secrets.LookupEnvRef(h.Env, tc.LookupEnv)
				if err != nil {
					return nil, fmt.Errorf("header %s: %w", h.Name, err)
				}
				out[h.Name] = v
			default:
				v, err := tc.Sealer.Open(h.Sealed, headerOwner(rec.OrgID, rec.ProjectID, rec.Name, h.Name))
				if err != nil {
					return nil, fmt.Errorf("header %s: %w", h.Name, err)
				}
				out[h.Name] = string(v)
			}
		}
		return out, nil
	}
	return s
}

// scopeServers is the scope's server list, read again after Refresh.
func (m *Manager) scopeServers(ctx context.Context, scope store.Scope) ([]store.MCPServer, error) {
	t := &m.tenants
	key := tools.ScopeKey(scope)
	t.mu.Lock()
	l, ok := t.loaded[key]
	t.mu.Unlock()
	if ok && time.Since(l.at) < t.cfg.Refresh {
		return l.recs, nil
	}
	recs, err := t.cfg.Store.ListMCPServers(ctx, scope)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.loaded[key] = loadedScope{at: time.Now(), recs: recs}
	t.mu.Unlock()
	return recs, nil
}

func sameServer(a, b store.MCPServer) bool {
	return a.URL == b.URL && a.Transport == b.Transport && a.CreatedAt.Equal(b.CreatedAt) && slices.Equal(a.Headers, b.Headers)
}

// Activate starts the scope's servers that are not running (the scope is
// about to use its tools: tools.ScopeActivator) and waits, up to StartWait,
// for those it started to list their tools. A server removed or replaced
// (by another daemon) since it started is stopped.
func (m *Manager) Activate(ctx context.Context, scope store.Scope) {
	t := &m.tenants
	if t.cfg == nil || scope.OrgID == "" {
		return
	}
	recs, err := m.scopeServers(ctx, scope)
	if err != nil {
		if ctx.Err() == nil {
			m.logger.Warn("mcp: cannot read the scope's servers", "org_id", scope.OrgID, "project_id", scope.ProjectID, "error", err)
		}
		return
	}
	key := tools.ScopeKey(scope)
	var fresh, stale []*server
	t.mu.Lock()
	if m.life.Err() != nil {
		t.mu.Unlock()
		return
	}
	run := t.running[key]
	for name, s := range run {
		if i := slices.IndexFunc(recs, func(r store.MCPServer) bool { return r.Name == name }); i < 0 || !sameServer(recs[i], s.tenant.rec) {
			stale = append(stale, s)
			delete(run, name)
		}
	}
	for _, rec := range recs {
		if s, ok := run[rec.Name]; ok {
			s.touch()
			continue
		}
		if run == nil {
			run = map[string]*server{}
			t.running[key] = run
		}
		s := m.newTenantServer(scope, rec)
		run[rec.Name] = s
		m.launch(s)
		fresh = append(fresh, s)
	}
	t.mu.Unlock()
	for _, s := range stale {
		s.halt()
	}
	if len(fresh) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, t.cfg.StartWait)
	defer cancel()
	for _, s := range fresh {
		s.waitListed(wctx)
	}
}

// launch starts a tenant server's supervisor; t.mu is held and life is not over.
func (m *Manager) launch(s *server) {
	ctx, stop := context.WithCancel(m.life)
	s.tenant.stop = stop
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(s.tenant.done)
		s.supervise(ctx)
	}()
}

// waitListed waits until the server is running or has failed once.
func (s *server) waitListed(ctx context.Context) {
	for {
		s.mu.Lock()
		state, restarts := s.state, s.restarts
		s.mu.Unlock()
		if state == StatusRunning || restarts > 0 {
			return
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// checkNew validates a tenant's request and seals its headers.
func (m *Manager) checkNew(scope store.Scope, req NewServer) (store.MCPServer, error) {
	tc := m.tenants.cfg
	if !config.ValidMCPServerName(req.Name) {
		return store.MCPServer{}, badInput("bad_name", "name must be 1-32 of a-z 0-9 _ - without \"__\" or a trailing _ (it prefixes the tools' names: <name>__<tool>)")
	}
	if _, ok := m.servers[req.Name]; ok {
		return store.MCPServer{}, ErrNameTaken
	}
	if len(req.URL) > maxURLBytes || strings.ContainsFunc(req.URL, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return store.MCPServer{}, badInput("bad_url", "url must be at most %d bytes with no control characters", maxURLBytes)
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return store.MCPServer{}, badInput("bad_url", "url must be an absolute http:// or https:// URL")
	}
	if u.User != nil {
		return store.MCPServer{}, badInput("bad_url", "url must not hold a user name or password: put credentials in a sealed header")
	}
	if why := tc.Guard.CheckURL(u); why != "" {
		return store.MCPServer{}, badInput("blocked_address", "url refused: %s (an operator may allow it with OPENINTERN_MCP_ALLOW)", why)
	}
	transport := req.Transport
	if transport == "" {
		transport = store.MCPTransportAuto
	}
	if transport != store.MCPTransportStreamable && transport != store.MCPTransportSSE && transport != store.MCPTransportAuto {
		return store.MCPServer{}, badInput("bad_transport", "transport must be streamable, sse or auto")
	}
	if len(req.Headers) > maxHeaders {
		return store.MCPServer{}, badInput("bad_header", "at most %d headers", maxHeaders)
	}
	rec := store.MCPServer{OrgID: scope.OrgID, ProjectID: scope.ProjectID, Name: req.Name, URL: req.URL, Transport: transport,
		CreatedBy: req.CreatedBy, Headers: []store.MCPHeader{}}
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(req.Headers)) {
		v := req.Headers[name]
		lower := strings.ToLower(name)
		if !headerNameRE.MatchString(name) || slices.Contains(reservedHeaders, lower) || seen[lower] {
			// The name is the tenant's own input, not a secret: say which.
			return store.MCPServer{}, badInput("bad_header", "header name %q is not a valid, distinct header the transport does not set itself", cut(name, 64))
		}
		seen[lower] = true
		switch {
		case v.Env != "" && v.Value != "":
			return store.MCPServer{}, badInput("bad_header", "header %s: give a value or an env reference, not both", name)
		case v.Env != "":
			if err := secrets.CheckEnvRef(v.Env); err != nil {
				return store.MCPServer{}, badInput("bad_header", "header %s: %v", name, err)
			}
			rec.Headers = append(rec.Headers, store.MCPHeader{Name: name, Env: v.Env})
		default:
			if v.Value == "" || len(v.Value) > maxHeaderValue || strings.ContainsAny(v.Value, "\r\n\x00") {
				return store.MCPServer{}, badInput("bad_header", "header %s: the value must be 1-%d bytes without CR, LF or NUL", name, maxHeaderValue)
			}
			sealed, err := tc.Sealer.Seal([]byte(v.Value), headerOwner(scope.OrgID, scope.ProjectID, req.Name, name))
			if err != nil {
				return store.MCPServer{}, err // secrets.ErrNoKey: the daemon has no key
			}
			rec.Headers = append(rec.Headers, store.MCPHeader{Name: name, Sealed: sealed})
		}
	}
	return rec, nil
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// AddServer adds a tenant server to scope; it starts on first use.
// Errors: *InputError (400), ErrNameTaken (409), a *store.QuotaError,
// secrets.ErrNoKey (a sealed header and no key), ErrTenantsOff.
func (m *Manager) AddServer(ctx context.Context, scope store.Scope, req NewServer) (ServerStatus, error) {
	tc := m.tenants.cfg
	if tc == nil {
		return ServerStatus{}, ErrTenantsOff
	}
	rec, err := m.checkNew(scope, req)
	if err != nil {
		return ServerStatus{}, err
	}
	rec, err = tc.Store.CreateMCPServer(ctx, rec, tc.MaxPerScope)
	if errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrQuotaExceeded) {
		return ServerStatus{}, ErrNameTaken
	}
	if err != nil {
		return ServerStatus{}, err
	}
	m.forget(scope)
	m.logger.Info("mcp server added", "mcp_server", rec.Name, "org_id", scope.OrgID, "project_id", scope.ProjectID, "by", rec.CreatedBy)
	return m.tenantStatus(ctx, scope, rec), nil
}

// forget drops the cached list of scope's servers.
func (m *Manager) forget(scope store.Scope) {
	m.tenants.mu.Lock()
	delete(m.tenants.loaded, tools.ScopeKey(scope))
	m.tenants.mu.Unlock()
}

// RemoveServer removes a scope's server and stops it. ErrConfigServer for
// a config server's name; store.ErrNotFound when the scope has none.
func (m *Manager) RemoveServer(ctx context.Context, scope store.Scope, name string) error {
	t := &m.tenants
	if t.cfg == nil {
		if _, ok := m.servers[name]; ok {
			return ErrConfigServer
		}
		return ErrUnknownServer
	}
	err := t.cfg.Store.DeleteMCPServer(ctx, scope, name)
	if errors.Is(err, store.ErrNotFound) {
		if _, ok := m.servers[name]; ok {
			return ErrConfigServer
		}
		return ErrUnknownServer
	}
	if err != nil {
		return err
	}
	key := tools.ScopeKey(scope)
	t.mu.Lock()
	delete(t.loaded, key)
	s := t.running[key][name]
	delete(t.running[key], name)
	t.mu.Unlock()
	if s != nil {
		s.halt()
	}
	m.logger.Info("mcp server removed", "mcp_server", name, "org_id", scope.OrgID, "project_id", scope.ProjectID)
	return nil
}

// ServersIn lists the config file's servers and scope's own.
func (m *Manager) ServersIn(ctx context.Context, scope store.Scope) ([]ServerStatus, error) {
	out := m.Servers()
	if m.tenants.cfg == nil {
		return out, nil
	}
	recs, err := m.tenants.cfg.Store.ListMCPServers(ctx, scope)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		out = append(out, m.tenantStatus(ctx, scope, rec))
	}
	return out, nil
}

// ServerIn is one server as scope sees it: its own first, then the config
// file's. ErrUnknownServer when neither has the name.
func (m *Manager) ServerIn(ctx context.Context, scope store.Scope, name string) (ServerStatus, error) {
	if m.tenants.cfg != nil {
		rec, err := m.tenants.cfg.Store.GetMCPServer(ctx, scope, name)
		switch {
		case err == nil:
			return m.tenantStatus(ctx, scope, rec), nil
		case !errors.Is(err, store.ErrNotFound):
			return ServerStatus{}, err
		}
	}
	if st, ok := m.Server(name); ok {
		return st, nil
	}
	return ServerStatus{}, ErrUnknownServer
}

// GrantNamesIn are the names an agent of scope may be granted besides the
// registered tools: every config and tenant server as "<server>__*".
func (m *Manager) GrantNamesIn(ctx context.Context, scope store.Scope) []string {
	names := m.GrantNames()
	if m.tenants.cfg == nil {
		return names
	}
	recs, err := m.scopeServers(ctx, scope)
	if err != nil {
		return names
	}
	for _, rec := range recs {
		names = append(names, rec.Name+tools.GroupSeparator+"*")
	}
	slices.Sort(names)
	return names
}

// ApproveIn approves a changed tool definition of scope's own server, or
// of a config server.
func (m *Manager) ApproveIn(ctx context.Context, scope store.Scope, serverName, tool, hash string) (ToolStatus, error) {
	t := &m.tenants
	if t.cfg != nil {
		_, err := t.cfg.Store.GetMCPServer(ctx, scope, serverName)
		switch {
		case err == nil:
			pin, err := t.cfg.Store.ApproveScopedMCPTool(ctx, scope, serverName, tool, hash)
			if err != nil {
				return ToolStatus{}, err
			}
			m.logger.Info("mcp tool definition approved", "mcp_server", serverName, "org_id", scope.OrgID, "project_id", scope.ProjectID, "tool", tool, "hash", pin.Hash)
			t.mu.Lock()
			s := t.running[tools.ScopeKey(scope)][serverName]
			t.mu.Unlock()
			if s == nil {
				return ToolStatus{Name: tool, ToolName: serverName + tools.GroupSeparator + tool, Pin: PinTrusted, Hash: pin.Hash, PinnedHash: pin.Hash}, nil
			}
			ts := s.applyPin(tool, pin.Hash)
			select {
			case s.relist <- struct{}{}:
			default:
			}
			return ts, nil
		case !errors.Is(err, store.ErrNotFound):
			return ToolStatus{}, err
		}
	}
	return m.Approve(ctx, serverName, tool, hash)
}

// tenantStatus is a tenant server's status: live when it runs here, else
// stopped with the tools its pins know.
func (m *Manager) tenantStatus(ctx context.Context, scope store.Scope, rec store.MCPServer) ServerStatus {
	t := &m.tenants
	t.mu.Lock()
	s := t.running[tools.ScopeKey(scope)][rec.Name]
	t.mu.Unlock()
	var st ServerStatus
	if s != nil && sameServer(s.tenant.rec, rec) {
		st = s.status()
	} else {
		st = ServerStatus{Name: rec.Name, Transport: rec.Transport, Status: StatusStopped, Tools: []ToolStatus{}}
		pins, err := t.cfg.Store.ListScopedMCPToolPins(ctx, scope, rec.Name)
		if err != nil {
			st.LastError = "cannot read the pins: " + err.Error()
		}
		for _, p := range pins {
			ts := ToolStatus{Name: p.Tool, ToolName: rec.Name + tools.GroupSeparator + p.Tool, Pin: PinTrusted, Hash: p.Hash, PinnedHash: p.Hash}
			var def struct {
				Description string `json:"description"`
			}
			_ = json.Unmarshal(p.Definition, &def)
			ts.Description = def.Description
			if p.PendingHash != "" {
				ts.Pin, ts.Hash = PinChanged, p.PendingHash
			}
			st.Tools = append(st.Tools, ts)
		}
	}
	st.Source = SourceTenant
	st.URL = redactURL(rec.URL)
	st.CreatedBy = rec.CreatedBy
	created := rec.CreatedAt
	st.CreatedAt = &created
	st.Headers = []HeaderInfo{}
	for _, h := range rec.Headers {
		hi := HeaderInfo{Name: h.Name, Kind: "sealed"}
		if h.Env != "" {
			hi.Kind, hi.Env = "env", h.Env
		}
		st.Headers = append(st.Headers, hi)
	}
	return st
}

// redactURL drops what may hold a secret: user info, query and fragment.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.User, u.RawQuery, u.Fragment, u.RawFragment = nil, "", "", ""
	return u.String()
}

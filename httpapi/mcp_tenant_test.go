package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/secrets"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
	"github.com/openintern/openintern/tools/mcptools"
)

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// headerProxy is server-everything behind a reverse proxy that refuses a
// request without the right X-Api-Key (server-everything checks no header),
// counting the requests open at the moment (an MCP session holds a GET
// stream open while it lives).
type headerProxy struct {
	srv  *httptest.Server
	open atomic.Int32
	seen atomic.Int32 // requests that carried the key
}

func startHeaderProxy(t *testing.T, port int, key string) *headerProxy {
	t.Helper()
	target, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(port))
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	p := &headerProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != key {
			http.Error(w, "missing or wrong X-Api-Key", http.StatusUnauthorized)
			return
		}
		p.seen.Add(1)
		p.open.Add(1)
		defer p.open.Add(-1)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

type tenantRig struct {
	h    *harness
	mgr  *mcptools.Manager
	logs *syncBuffer
}

// newTenantRig is the API with tenant MCP servers on kind's store: the
// guard allows only what allow lists, the secret key is generated in a
// temporary DATA_DIR, and one disabled config server "shared" exists.
func newTenantRig(t *testing.T, kind string, allow []string, maxPerScope int) *tenantRig {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHarness(t, kind, withAuth, func(d *Deps) { d.Logger = logger })
	guard, err := tools.NewAddrGuard(allow)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := secrets.Load("", t.TempDir(), true, logger)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := mcptools.New(mcptools.Config{
		Servers:  map[string]config.MCPServer{"shared": {URL: "http://127.0.0.1:1/mcp", Disabled: true}},
		Registry: h.reg, Pins: h.store.(store.MCPPinStore), Logger: logger, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
		Tenants: &mcptools.TenantConfig{Store: h.store.(store.MCPServerStore), Registry: h.reg, Sealer: sealer, Guard: guard,
			IdleTimeout: time.Hour, MaxPerScope: maxPerScope, StartWait: 60 * time.Second,
			// Rows the test writes straight to the store are seen at once.
			Refresh: time.Millisecond,
			LookupEnv: func(k string) (string, bool) {
				if k == "OPENINTERN_MCP_SECRET_TEST" {
					return "env-secret-value", true
				}
				return "", false
			}},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.reg.SetScopeActivator(mgr.Activate)
	mgr.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := mgr.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	h.api.MountMCP(mgr)
	return &tenantRig{h: h, mgr: mgr, logs: logs}
}

func containsSpec(specs []llm.ToolSpec, name string) bool {
	return slices.ContainsFunc(specs, func(s llm.ToolSpec) bool { return s.Name == name })
}

func specNamesOf(specs []llm.ToolSpec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	return out
}

// TestTenantMCPServers: a tenant's admin adds an HTTP MCP server with a
// sealed header (a proxy in front of server-everything checks it); an agent
// of that scope is offered and calls <name>__echo; another tenant neither
// sees nor calls it, nor reads, approves or removes the server; the header
// value is in no response, log line or audit record; a sealed value copied
// into another scope's row does not open; DELETE stops the server.
func TestTenantMCPServers(t *testing.T) {
	port := testenv.StartNPMServer(t, "mcp-server-everything", "streamableHttp")
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { testTenantMCPServers(t, kind, port) })
	}
}

func testTenantMCPServers(t *testing.T, kind string, port int) {
	const secret = "s3cret-Header-Value-42"
	proxy := startHeaderProxy(t, port, secret)
	rig := newTenantRig(t, kind, []string{"127.0.0.1"}, 3)
	h := rig.h
	a, b := store.Scope{OrgID: "o1", UserID: "u1"}, store.Scope{OrgID: "o2", UserID: "u2"}
	_, adminA := h.issue(a, auth.RoleAdmin, nil)
	_, memberA := h.issue(a, auth.RoleMember, nil)
	_, viewerA := h.issue(a, auth.RoleViewer, nil)
	_, adminB := h.issue(b, auth.RoleAdmin, nil)
	var bodies bytes.Buffer
	do := func(rq request) response {
		t.Helper()
		r := h.do(rq)
		bodies.Write(r.body)
		return r
	}
	expect := func(status int, code string, rq request) response {
		t.Helper()
		r := do(rq)
		if r.status != status || (code != "" && r.errorCode(t) != code) {
			t.Fatalf("%s %s: %d %s; want %d %s", rq.method, rq.path, r.status, r.body, status, code)
		}
		return r
	}
	add := `{"name":"docs","url":"` + proxy.srv.URL + `/mcp","transport":"streamable","headers":{"X-Api-Key":"` + secret + `","X-From-Env":{"env":"OPENINTERN_MCP_SECRET_TEST"}}}`
	expect(http.StatusForbidden, "", request{method: "POST", path: "/api/mcp/servers", body: add, header: bearer(memberA)})
	created := expect(http.StatusCreated, "", request{method: "POST", path: "/api/mcp/servers", body: add, header: bearer(adminA)}).json(t)
	if created["source"] != "tenant" || created["name"] != "docs" || created["status"] != mcptools.StatusStopped {
		t.Fatalf("created: %v", created)
	}
	hdrs, _ := json.Marshal(created["headers"])
	if string(hdrs) != `[{"kind":"sealed","name":"X-Api-Key"},{"env":"OPENINTERN_MCP_SECRET_TEST","kind":"env","name":"X-From-Env"}]` {
		t.Fatalf("headers shown: %s", hdrs)
	}

	// Refusals: each with its code, none stored.
	for _, c := range []struct{ body, status, code string }{
		{add, "409", "name_taken"},
		{`{"name":"shared","url":"https://mcp.example.com/mcp"}`, "409", "name_taken"},
		{`{"name":"Bad__x","url":"https://mcp.example.com/mcp"}`, "400", "bad_name"},
		{`{"name":"n\u0000ul","url":"https://mcp.example.com/mcp"}`, "400", "invalid_text"},
		{`{"name":"x","url":"ftp://mcp.example.com/"}`, "400", "bad_url"},
		{`{"name":"x","url":"https://user:pw@mcp.example.com/"}`, "400", "bad_url"},
		{`{"name":"x","url":"https://mcp.example.com/","transport":"stdio"}`, "400", "bad_transport"},
		{`{"name":"x","url":"https://mcp.example.com/","headers":{"X-K":{"env":"DATABASE_URL"}}}`, "400", "bad_header"},
		{`{"name":"x","url":"https://mcp.example.com/","headers":{"X-K":"a\r\nHost: evil"}}`, "400", "bad_header"},
		{`{"name":"x","url":"https://mcp.example.com/","headers":{"Host":"evil"}}`, "400", "bad_header"},
		{`{"name":"x","url":"https://mcp.example.com/","headers":{"X-K":42}}`, "400", "bad_header"},
		{`{"name":"x","url":"https://mcp.example.com/","headers":{"X-K":{"env":"OPENINTERN_MCP_SECRET_A","value":"v"}}}`, "400", "bad_header"},
	} {
		st, _ := strconv.Atoi(c.status)
		expect(st, c.code, request{method: "POST", path: "/api/mcp/servers", body: c.body, header: bearer(adminA)})
	}
	expect(http.StatusBadRequest, "blocked_address", request{method: "POST", path: "/api/mcp/servers",
		body: `{"name":"meta","url":"http://169.254.169.254/latest"}`, header: bearer(adminA)})
	// The quota (3 here): docs + two more, then 409.
	for _, n := range []string{"q1", "q2"} {
		expect(http.StatusCreated, "", request{method: "POST", path: "/api/mcp/servers", body: `{"name":"` + n + `","url":"https://mcp.example.com/mcp"}`, header: bearer(adminA)})
	}
	expect(http.StatusConflict, "quota_exceeded", request{method: "POST", path: "/api/mcp/servers", body: `{"name":"q3","url":"https://mcp.example.com/mcp"}`, header: bearer(adminA)})
	for _, n := range []string{"q1", "q2"} {
		expect(http.StatusNoContent, "", request{method: "DELETE", path: "/api/mcp/servers/" + n, header: bearer(adminA)})
	}

	// First use: the scope's agents' specs start the server and offer its
	// tools; a call of the scope reaches it through the proxy with the key.
	specs := h.reg.SpecsFor(t.Context(), a, nil)
	if !containsSpec(specs, "docs__echo") {
		st, _ := rig.mgr.ServerIn(t.Context(), a, "docs")
		t.Fatalf("docs__echo not offered in its scope: %v; server %+v", specNamesOf(specs), st)
	}
	res, out := h.reg.Route(t.Context(), tools.Call{Scope: a, Name: "docs__echo", CallID: "c1", Args: json.RawMessage(`{"message":"from a tenant"}`)}, []string{"docs__*"})
	if out != tools.OutcomeOK || res.Content != "Echo: from a tenant" {
		t.Fatalf("echo: %v %+v", out, res)
	}
	if proxy.seen.Load() == 0 {
		t.Fatal("the proxy saw no request with the key")
	}
	// Another tenant: not offered, not callable, not visible.
	if containsSpec(h.reg.SpecsFor(t.Context(), b, nil), "docs__echo") {
		t.Fatal("another tenant is offered docs__echo")
	}
	res, out = h.reg.Route(t.Context(), tools.Call{Scope: b, Name: "docs__echo", CallID: "c2", Args: json.RawMessage(`{"message":"x"}`)}, nil)
	if out != tools.OutcomeUnknown {
		t.Fatalf("another tenant called docs__echo: %v %+v", out, res)
	}
	expect(http.StatusNotFound, "not_found", request{method: "GET", path: "/api/mcp/servers/docs", header: bearer(adminB)})
	expect(http.StatusNotFound, "not_found", request{method: "DELETE", path: "/api/mcp/servers/docs", header: bearer(adminB)})
	expect(http.StatusNotFound, "not_found", request{method: "POST", path: "/api/mcp/servers/docs/tools/echo/approve", header: bearer(adminB)})
	if r := expect(http.StatusOK, "", request{method: "GET", path: "/api/mcp/servers", header: bearer(adminB)}); strings.Contains(string(r.body), `"docs"`) {
		t.Fatalf("another tenant lists docs: %s", r.body)
	}
	// Grants: a's agents may be given docs__*, b's may not.
	expect(http.StatusCreated, "", request{method: "POST", path: "/api/agents", body: `{"agent_id":"ag","name":"A","tools":["docs__*","docs__echo"]}`, header: bearer(adminA)})
	expect(http.StatusBadRequest, "unknown_tool", request{method: "POST", path: "/api/agents", body: `{"agent_id":"ag","name":"A","tools":["docs__*"]}`, header: bearer(adminB)})

	// The scope sees its server with status, tools and pins; the config
	// server is listed too, marked.
	show := expect(http.StatusOK, "", request{method: "GET", path: "/api/mcp/servers/docs", header: bearer(viewerA)}).json(t)
	if show["status"] != mcptools.StatusRunning || show["transport"] != "http" || !strings.Contains(show["url"].(string), "/mcp") {
		t.Fatalf("show: %v", show)
	}
	var echo map[string]any
	for _, x := range show["tools"].([]any) {
		if x.(map[string]any)["name"] == "echo" {
			echo = x.(map[string]any)
		}
	}
	if echo == nil || echo["pin"] != mcptools.PinTrusted || echo["enabled"] != true || echo["hash"] == "" || echo["hash"] != echo["pinned_hash"] {
		t.Fatalf("echo's pin: %v", echo)
	}
	list := expect(http.StatusOK, "", request{method: "GET", path: "/api/mcp/servers", header: bearer(viewerA)})
	if !strings.Contains(string(list.body), `"name":"shared"`) || !strings.Contains(string(list.body), `"source":"config"`) ||
		!strings.Contains(string(list.body), `"source":"tenant"`) {
		t.Fatalf("list: %s", list.body)
	}
	expect(http.StatusConflict, "nothing_pending", request{method: "POST", path: "/api/mcp/servers/docs/tools/echo/approve", header: bearer(adminA)})
	expect(http.StatusConflict, "config_server", request{method: "DELETE", path: "/api/mcp/servers/shared", header: bearer(adminA)})

	// A sealed value copied into another scope's row does not open there:
	// b's server of the same name fails to start, and says why without the value.
	rec, err := h.store.(store.MCPServerStore).GetMCPServer(t.Context(), a, "docs")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rec.Headers[0].Sealed, secret) || rec.Headers[0].Sealed == "" {
		t.Fatalf("stored header: %+v", rec.Headers[0])
	}
	moved := rec
	moved.OrgID = "o2"
	if _, err := h.store.(store.MCPServerStore).CreateMCPServer(t.Context(), moved, 0); err != nil {
		t.Fatal(err)
	}
	if containsSpec(h.reg.SpecsFor(t.Context(), b, nil), "docs__echo") {
		t.Fatal("a moved sealed header opened in another scope")
	}
	stB := waitServer(t, rig.mgr, b, "docs", func(st mcptools.ServerStatus) bool { return st.Status == mcptools.StatusFailed })
	if !strings.Contains(stB.LastError, "does not open") {
		t.Fatalf("moved row: %+v", stB)
	}
	bodies.Write([]byte(stB.LastError))

	// DELETE stops the server: its session stream ends, its tools go.
	expect(http.StatusNoContent, "", request{method: "DELETE", path: "/api/mcp/servers/docs", header: bearer(adminA)})
	deadline := time.Now().Add(15 * time.Second)
	for proxy.open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests still open through the proxy after DELETE", proxy.open.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if containsSpec(h.reg.SpecsFor(t.Context(), a, nil), "docs__echo") {
		t.Fatal("docs__echo offered after DELETE")
	}
	if _, out := h.reg.Route(t.Context(), tools.Call{Scope: a, Name: "docs__echo", CallID: "c3", Args: json.RawMessage(`{"message":"x"}`)}, nil); out != tools.OutcomeUnknown {
		t.Fatalf("docs__echo after DELETE: %v", out)
	}
	expect(http.StatusNotFound, "not_found", request{method: "GET", path: "/api/mcp/servers/docs", header: bearer(adminA)})

	// The header value never left: not in any answer, log line or audit record.
	recs, err := h.api.deps.Audit.ListAudit(t.Context(), a, store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	auditJSON, _ := json.Marshal(recs)
	if !strings.Contains(string(auditJSON), "POST /api/mcp/servers") {
		t.Fatalf("the add is not audited: %s", auditJSON)
	}
	for what, text := range map[string]string{"responses": bodies.String(), "logs": rig.logs.String(), "audit": string(auditJSON)} {
		for _, leak := range []string{secret, "env-secret-value"} {
			if strings.Contains(text, leak) {
				t.Fatalf("the %s hold a header value %q", what, leak)
			}
		}
	}
}

// TestTenantMCPServerSSRF: without an allow-list a tenant URL naming a
// loopback, private or metadata address is refused at POST, and a name that
// resolves to loopback (DNS rebinding: "localhost" here) is refused when dialled.
func TestTenantMCPServerSSRF(t *testing.T) {
	port := testenv.StartNPMServer(t, "mcp-server-everything", "streamableHttp")
	rig := newTenantRig(t, "sqlite", nil, 20)
	h := rig.h
	a := store.Scope{OrgID: "o1", UserID: "u1"}
	_, admin := h.issue(a, auth.RoleAdmin, nil)
	for _, u := range []string{"http://127.0.0.1:" + strconv.Itoa(port) + "/mcp", "http://[::1]:80/", "http://[::ffff:127.0.0.1]/", "http://2130706433/",
		"http://0x7f.1/", "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::254]/"} {
		r := h.do(request{method: "POST", path: "/api/mcp/servers", body: `{"name":"x","url":"` + u + `"}`, header: bearer(admin)})
		if r.status != http.StatusBadRequest || r.errorCode(t) != "blocked_address" {
			t.Fatalf("%s: %d %s", u, r.status, r.body)
		}
	}
	h.must(http.StatusCreated, request{method: "POST", path: "/api/mcp/servers",
		body: `{"name":"rebind","url":"http://localhost:` + strconv.Itoa(port) + `/mcp"}`, header: bearer(admin)})
	if specs := h.reg.SpecsFor(t.Context(), a, nil); containsSpec(specs, "rebind__echo") {
		t.Fatal("a server behind a name resolving to loopback was reached")
	}
	st := waitServer(t, rig.mgr, a, "rebind", func(st mcptools.ServerStatus) bool { return st.Status == mcptools.StatusFailed })
	if !strings.Contains(st.LastError, "blocked address") || !strings.Contains(st.LastError, "loopback") {
		t.Fatalf("rebind: %+v", st)
	}
}

func waitServer(t *testing.T, mgr *mcptools.Manager, scope store.Scope, name string, cond func(mcptools.ServerStatus) bool) mcptools.ServerStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := mgr.ServerIn(t.Context(), scope, name)
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s: condition not met: %+v", name, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mountMatrixMCP mounts tenant MCP servers for the authorization matrix:
// nothing is dialled (no scope activator is set, the URLs are never used).
func mountMatrixMCP(t *testing.T, h *harness) {
	t.Helper()
	guard, err := tools.NewAddrGuard(nil)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := mcptools.New(mcptools.Config{Registry: h.reg, Pins: h.store.(store.MCPPinStore),
		Tenants: &mcptools.TenantConfig{Store: h.store.(store.MCPServerStore), Registry: h.reg, Guard: guard, MaxPerScope: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	mgr.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = mgr.Close(ctx)
	})
	h.api.MountMCP(mgr)
}

// matrixMCPFixture gives fixture fx a tenant server m<n> of o1 whose tool
// "echo" has a changed definition waiting for approval.
func matrixMCPFixture(t *testing.T, h *harness, fx matrixFixture, admin string) {
	t.Helper()
	name := "m" + fx["n"]
	h.must(http.StatusCreated, request{method: "POST", path: "/api/mcp/servers", body: `{"name":"` + name + `","url":"https://mcp.example.com/mcp"}`, header: bearer(admin)})
	ms := h.store.(store.MCPServerStore)
	for _, hash := range []string{"h1", "h2"} {
		if _, err := ms.ObserveScopedMCPTool(t.Context(), store.Scope{OrgID: "o1", UserID: "u1"}, name, "echo", hash, json.RawMessage(`{"name":"echo"}`)); err != nil {
			t.Fatal(err)
		}
	}
	fx["name"], fx["tool"] = name, "echo"
}

// TestTenantMCPNoSecretKey: a daemon without a secret key (PostgreSQL and
// no OPENINTERN_SECRET_KEY) refuses a header value to seal with 503 telling
// the admin what to set, and still takes env references.
func TestTenantMCPNoSecretKey(t *testing.T) {
	h := newHarness(t, "postgres", withAuth)
	mountMatrixMCP(t, h)
	_, admin := h.issue(store.Scope{OrgID: "o1", UserID: "u1"}, auth.RoleAdmin, nil)
	r := h.do(request{method: "POST", path: "/api/mcp/servers", header: bearer(admin),
		body: `{"name":"docs","url":"https://mcp.example.com/mcp","headers":{"Authorization":"Bearer nokey-secret"}}`})
	if r.status != http.StatusServiceUnavailable || r.errorCode(t) != "secret_key_missing" || !strings.Contains(string(r.body), secrets.KeyEnv) ||
		strings.Contains(string(r.body), "nokey-secret") {
		t.Fatalf("sealed header without a key: %d %s", r.status, r.body)
	}
	h.must(http.StatusCreated, request{method: "POST", path: "/api/mcp/servers", header: bearer(admin),
		body: `{"name":"docs","url":"https://mcp.example.com/mcp","headers":{"Authorization":{"env":"OPENINTERN_MCP_SECRET_DOCS"}}}`})
}

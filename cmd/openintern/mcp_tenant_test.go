package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// TestTenantMCPServerRun: through the CLI a tenant adds an HTTP MCP server
// (server-everything behind a proxy that requires the sealed header); a run
// of that tenant's agent is offered and calls docs__echo; another tenant's
// run is offered no such tool and its call of it is unknown; the CLI never
// prints the header value; remove stops it. The daemon generated its
// secret key in DATA_DIR with mode 0600.
func TestTenantMCPServerRun(t *testing.T) {
	const secret = "e2e-Sealed-Header-Value"
	port := testenv.StartNPMServer(t, "mcp-server-everything", "streamableHttp")
	target, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(port))
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != secret {
			http.Error(w, "wrong key", http.StatusUnauthorized)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { proxy.CloseClientConnections(); proxy.Close() })

	srv := llmtest.NewServer(t)
	cfg := newConfig(t, "sqlite")
	cfg.MCPAllow = []string{"127.0.0.1"}
	d := startDaemon(t, cfg, srv.Provider())
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, "secret.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key file: %v %v", fi, err)
	}

	envA := cliEnv(d, "org-a", "u1")
	res := runCLI(t, envA, "mcp", "servers", "add", "docs", proxy.URL+"/mcp", "--header", "X-Api-Key="+secret)
	if res.code != 0 || !strings.Contains(res.stdout, "docs__*") {
		t.Fatalf("add: %+v", res)
	}
	res = runCLI(t, envA, "mcp", "servers", "list")
	if res.code != 0 || !strings.Contains(res.stdout, "docs") || !strings.Contains(res.stdout, "tenant") {
		t.Fatalf("list: %+v", res)
	}

	a := d.client("org-a", "u1")
	srv.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "c1", Name: "docs__echo", Arguments: `{"message":"e2e"}`}}}, llmtest.Reply{Text: "done"})
	a.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "w", "name": "W", "tools": []string{"docs__*"}}, nil)
	run := a.waitRun(a.createRun("w", "s", "go"), 90*time.Second)
	if run.Status != store.RunCompleted {
		t.Fatalf("run: %+v", run)
	}
	if got := a.toolResults(run.ID)["docs__echo"]; got == nil || got["content"] != "Echo: e2e" {
		t.Fatalf("docs__echo in its scope: %+v", got)
	}
	if tools := offered(srv.Requests()[0]); !slices.Contains(tools, "docs__echo") {
		t.Fatalf("docs__echo not offered to its scope's agent: %v", tools)
	}

	b := d.client("org-b", "u1")
	before := len(srv.Requests())
	srv.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "c2", Name: "docs__echo", Arguments: `{"message":"steal"}`}}}, llmtest.Reply{Text: "done"})
	b.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "w", "name": "W"}, nil)
	run = b.waitRun(b.createRun("w", "s", "go"), 60*time.Second)
	if tools := offered(srv.Requests()[before]); slices.Contains(tools, "docs__echo") {
		t.Fatalf("another tenant's agent is offered docs__echo: %v", tools)
	}
	for _, e := range b.events(run.ID) {
		if strings.Contains(string(e.Payload), "Echo: steal") {
			t.Fatalf("another tenant's call reached the server: %s", e.Payload)
		}
	}
	if got := b.toolResults(run.ID)["docs__echo"]; got != nil && got["content"] == "Echo: steal" {
		t.Fatalf("another tenant called docs__echo: %+v", got)
	}

	res = runCLI(t, envA, "mcp", "servers", "show", "docs")
	if res.code != 0 || !strings.Contains(res.stdout, "docs__echo") || !strings.Contains(res.stdout, "X-Api-Key: sealed") {
		t.Fatalf("show: %+v", res)
	}
	for _, args := range [][]string{{"show", "docs"}, {"show", "docs", "--json"}, {"list", "--json"}} {
		if res := runCLI(t, envA, append([]string{"mcp", "servers"}, args...)...); strings.Contains(res.stdout+res.stderr, secret) {
			t.Fatalf("mcp servers %v prints the header value", args)
		}
	}
	res = runCLI(t, cliEnv(d, "org-b", "u1"), "mcp", "servers", "show", "docs")
	if res.code == 0 {
		t.Fatalf("another tenant shows docs: %+v", res)
	}
	res = runCLI(t, envA, "mcp", "servers", "remove", "docs")
	if res.code != 0 {
		t.Fatalf("remove: %+v", res)
	}
	res = runCLI(t, envA, "mcp", "servers", "list")
	if strings.Contains(res.stdout, "docs") {
		t.Fatalf("list after remove: %+v", res)
	}
	res = runCLI(t, envA, "mcp", "servers", "list", "--json")
	if res.code != 0 || strings.Contains(res.stdout, secret) {
		t.Fatalf("list --json: %+v", res)
	}
}

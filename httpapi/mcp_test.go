package httpapi

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
	"github.com/openintern/openintern/tools/mcptools"
)

// TestMCPRoutes: viewers read the servers (no command or env), only admins
// approve, errors are 404/409 with the API's shape, and an agent may be
// granted a tool of a configured server, or the whole server, before it is listed.
func TestMCPRoutes(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "testserver")
	if out, err := exec.Command("go", "build", "-o", bin, "../tools/mcptools/internal/testserver").CombinedOutput(); err != nil {
		t.Fatalf("build the test server: %v\n%s", err, out)
	}
	h := newHarness(t, "sqlite", withAuth, func(d *Deps) {
		d.ToolNames = func() []string { return []string{"read_file", "srv__*"} }
	})
	reg := tools.NewRegistry()
	mgr, err := mcptools.New(mcptools.Config{Registry: reg, Pins: h.store.(store.MCPPinStore), Servers: map[string]config.MCPServer{
		"srv": {Command: bin, Env: map[string]string{"MCP_TEST_DESCRIPTION": "env-description"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	mgr.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = reg.Close(ctx)
		_ = mgr.Close(ctx)
	})
	h.api.MountMCP(mgr)
	o1 := store.Scope{OrgID: "o1", UserID: "u1"}
	_, admin := h.issue(o1, auth.RoleAdmin, nil)
	_, member := h.issue(o1, auth.RoleMember, nil)
	_, viewer := h.issue(o1, auth.RoleViewer, nil)

	deadline := time.Now().Add(60 * time.Second)
	for {
		body := h.must(http.StatusOK, request{method: "GET", path: "/api/mcp/servers/srv", header: bearer(viewer)}).json(t)
		if body["status"] == mcptools.StatusRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not running: %v", body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	list := h.must(http.StatusOK, request{method: "GET", path: "/api/mcp/servers", header: bearer(viewer)})
	if !strings.Contains(string(list.body), `"tool_name":"srv__greet"`) || strings.Contains(string(list.body), bin) {
		t.Fatalf("list: %s", list.body)
	}
	if r := h.do(request{method: "GET", path: "/api/mcp/servers/nope", header: bearer(viewer)}); r.status != http.StatusNotFound || r.errorCode(t) != "not_found" {
		t.Fatalf("unknown server: %d %s", r.status, r.body)
	}
	approve := "/api/mcp/servers/srv/tools/greet/approve"
	if r := h.do(request{method: "POST", path: approve, header: bearer(member)}); r.status != http.StatusForbidden {
		t.Fatalf("member approves: %d %s", r.status, r.body)
	}
	if r := h.do(request{method: "POST", path: approve, header: bearer(admin)}); r.status != http.StatusConflict || r.errorCode(t) != "nothing_pending" {
		t.Fatalf("approve with nothing pending: %d %s", r.status, r.body)
	}
	if r := h.do(request{method: "POST", path: "/api/mcp/servers/srv/tools/nope/approve", header: bearer(admin)}); r.status != http.StatusNotFound {
		t.Fatalf("approve an unknown tool: %d %s", r.status, r.body)
	}
	if r := h.do(request{method: "POST", path: approve, body: `{"hash": 1}`, header: bearer(admin)}); r.status != http.StatusBadRequest {
		t.Fatalf("bad body: %d %s", r.status, r.body)
	}

	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"m1","name":"M","tools":["srv__*","srv__later","read_file"]}`, header: bearer(admin)})
	for _, bad := range []string{"other__x", "srv__", "srv__bad name"} {
		if r := h.do(request{method: "POST", path: "/api/agents", body: `{"agent_id":"m2","name":"M","tools":["` + bad + `"]}`, header: bearer(admin)}); r.status != http.StatusBadRequest {
			t.Fatalf("grant %q: %d %s", bad, r.status, r.body)
		}
	}
}

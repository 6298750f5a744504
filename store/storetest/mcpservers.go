package storetest

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/openintern/openintern/store"
)

var mcpServerCases = []testCase{
	{"MCPServers/CreateGetListDelete", testMCPServersCRUD},
	{"MCPServers/QuotaUnderConcurrentAdds", testMCPServersQuota},
	{"MCPServers/PinsAreScoped", testMCPServerPinsScoped},
}

func mcpServerStore(t *testing.T, s store.Store) store.MCPServerStore {
	t.Helper()
	ms, ok := s.(clockedStore).Store.(store.MCPServerStore)
	if !ok {
		t.Fatalf("%T does not keep tenant MCP servers", s.(clockedStore).Store)
	}
	return ms
}

// testMCPServersCRUD: a server is its scope's (org and project): another
// org or project neither gets nor lists nor deletes it; a second server of
// the same name in a scope is a conflict; headers come back as stored.
func testMCPServersCRUD(t *testing.T, s store.Store) {
	ms, ctx := mcpServerStore(t, s), t.Context()
	a := store.Scope{OrgID: "o1", UserID: "u1", ProjectID: "p1"}
	srv := store.MCPServer{OrgID: "o1", ProjectID: "p1", Name: "docs", URL: "https://mcp.example/mcp", Transport: store.MCPTransportAuto,
		Headers:   []store.MCPHeader{{Name: "Authorization", Sealed: "c2VhbGVk"}, {Name: "X-Key", Env: "OPENINTERN_MCP_SECRET_X"}},
		CreatedBy: "u1"}
	got, err := ms.CreateMCPServer(ctx, srv, 0)
	must(t, err)
	if got.CreatedAt.IsZero() || got.Name != "docs" {
		t.Fatalf("created: %+v", got)
	}
	if _, err := ms.CreateMCPServer(ctx, srv, 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same name again: %v, want ErrConflict", err)
	}
	bad := srv
	bad.Name, bad.Headers = "bad", []store.MCPHeader{{Name: "X", Sealed: "a", Env: "B"}}
	if _, err := ms.CreateMCPServer(ctx, bad, 0); err == nil {
		t.Fatal("a header both sealed and env was stored")
	}
	// The same name in another project and another org are other servers.
	other := srv
	other.ProjectID = "p2"
	_, err = ms.CreateMCPServer(ctx, other, 0)
	must(t, err)
	other.OrgID, other.ProjectID = "o2", "p1"
	_, err = ms.CreateMCPServer(ctx, other, 0)
	must(t, err)

	back, err := ms.GetMCPServer(ctx, a, "docs")
	must(t, err)
	if back.URL != srv.URL || back.Transport != srv.Transport || len(back.Headers) != 2 || back.Headers[0] != srv.Headers[0] ||
		back.Headers[1] != srv.Headers[1] || back.CreatedBy != "u1" || !back.CreatedAt.Equal(got.CreatedAt) {
		t.Fatalf("get: %+v", back)
	}
	// Another user of the project sees it; another project does not.
	if _, err := ms.GetMCPServer(ctx, store.Scope{OrgID: "o1", UserID: "u9", ProjectID: "p1"}, "docs"); err != nil {
		t.Fatalf("another user of the project: %v", err)
	}
	if _, err := ms.GetMCPServer(ctx, store.Scope{OrgID: "o3", UserID: "u1", ProjectID: "p1"}, "docs"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another org: %v", err)
	}
	list, err := ms.ListMCPServers(ctx, a)
	must(t, err)
	if len(list) != 1 || list[0].Name != "docs" {
		t.Fatalf("list: %+v", list)
	}
	all, err := ms.ListAllMCPServers(ctx)
	must(t, err)
	if len(all) != 3 {
		t.Fatalf("all: %+v", all)
	}
	if err := ms.DeleteMCPServer(ctx, store.Scope{OrgID: "o3", ProjectID: "p1"}, "docs"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete from another org: %v", err)
	}
	must(t, ms.DeleteMCPServer(ctx, a, "docs"))
	if err := ms.DeleteMCPServer(ctx, a, "docs"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if list, err = ms.ListMCPServers(ctx, a); err != nil || len(list) != 0 {
		t.Fatalf("after delete: %+v %v", list, err)
	}
	if _, err := ms.GetMCPServer(ctx, store.Scope{OrgID: "o2", ProjectID: "p1"}, "docs"); err != nil {
		t.Fatalf("o2's server after o1's was deleted: %v", err)
	}
}

// testMCPServersQuota: concurrent adds in one scope stop at the quota with
// a QuotaError; another scope is not counted.
func testMCPServersQuota(t *testing.T, s store.Store) {
	ms, ctx := mcpServerStore(t, s), t.Context()
	const limit = 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, quota := 0, 0
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ms.CreateMCPServer(ctx, store.MCPServer{OrgID: "o1", Name: "s" + string(rune('a'+i)), URL: "https://x.example/", Transport: store.MCPTransportSSE}, limit)
			mu.Lock()
			defer mu.Unlock()
			var qe *store.QuotaError
			switch {
			case err == nil:
				ok++
			case errors.As(err, &qe) && qe.Quota == store.QuotaMCPServers && qe.Limit == limit:
				quota++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != limit || quota != 3 {
		t.Fatalf("created %d, refused %d; want %d and 3", ok, quota, limit)
	}
	if _, err := ms.CreateMCPServer(ctx, store.MCPServer{OrgID: "o2", Name: "sa", URL: "https://x.example/", Transport: store.MCPTransportSSE}, limit); err != nil {
		t.Fatalf("another org: %v", err)
	}
}

// testMCPServerPinsScoped: a tenant server's pins are its scope's, apart
// from a config server of the same name and from another scope; deleting
// the server drops its pins.
func testMCPServerPinsScoped(t *testing.T, s store.Store) {
	ms, ctx := mcpServerStore(t, s), t.Context()
	pins := mcpStore(t, s)
	a, b := store.Scope{OrgID: "o1", ProjectID: "p1"}, store.Scope{OrgID: "o2", ProjectID: "p1"}
	def := json.RawMessage(`{"name":"echo"}`)
	_, err := ms.CreateMCPServer(ctx, store.MCPServer{OrgID: "o1", ProjectID: "p1", Name: "srv", URL: "https://x.example/", Transport: store.MCPTransportAuto}, 0)
	must(t, err)
	observeMCP(t, pins, "srv", "echo", "hConfig", def)
	p, err := ms.ObserveScopedMCPTool(ctx, a, "srv", "echo", "hA", def)
	must(t, err)
	if p.Hash != "hA" || p.PendingHash != "" {
		t.Fatalf("tenant pin took the config server's: %+v", p)
	}
	p, err = ms.ObserveScopedMCPTool(ctx, b, "srv", "echo", "hB", def)
	must(t, err)
	if p.Hash != "hB" {
		t.Fatalf("another scope's pin: %+v", p)
	}
	p, err = ms.ObserveScopedMCPTool(ctx, a, "srv", "echo", "hA2", def)
	must(t, err)
	if p.Hash != "hA" || p.PendingHash != "hA2" {
		t.Fatalf("changed: %+v", p)
	}
	if _, err := ms.ApproveScopedMCPTool(ctx, b, "srv", "echo", "hA2"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("approve from another scope: %v", err)
	}
	p, err = ms.ApproveScopedMCPTool(ctx, a, "srv", "echo", "hA2")
	must(t, err)
	if p.Hash != "hA2" {
		t.Fatalf("approved: %+v", p)
	}
	cfg, err := pins.ListMCPToolPins(ctx, "srv")
	must(t, err)
	if len(cfg) != 1 || cfg[0].Hash != "hConfig" {
		t.Fatalf("config server's pins: %+v", cfg)
	}
	must(t, ms.DeleteMCPServer(ctx, a, "srv"))
	if left, err := ms.ListScopedMCPToolPins(ctx, a, "srv"); err != nil || len(left) != 0 {
		t.Fatalf("pins after delete: %+v %v", left, err)
	}
	if left, err := ms.ListScopedMCPToolPins(ctx, b, "srv"); err != nil || len(left) != 1 {
		t.Fatalf("the other scope's pins after delete: %+v %v", left, err)
	}
}

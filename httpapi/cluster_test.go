package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

// tableCluster answers /api/cluster from a table of leases of several
// scopes, as the store's ListScopeLeases would filter them. The daemon's
// own implementation is tested over PostgreSQL and Redis in
// internal/daemon; this one pins the handler's contract.
type tableCluster struct {
	nodes    []store.Node
	leases   []store.Lease
	draining atomic.Bool

	mu     sync.Mutex
	fail   error
	scopes []store.Scope
}

func (c *tableCluster) lastScope() store.Scope {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.scopes[len(c.scopes)-1]
}

func (c *tableCluster) Status(_ context.Context, scope store.Scope) (ClusterStatus, error) {
	c.mu.Lock()
	c.scopes = append(c.scopes, scope)
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		return ClusterStatus{}, fail
	}
	var mine []store.Lease
	for _, l := range c.leases {
		if l.Scope == scope {
			mine = append(mine, l)
		}
	}
	return ClusterStatus{NodeID: "n1", Nodes: c.nodes, Leases: mine}, nil
}

func (c *tableCluster) Draining() bool { return c.draining.Load() }

func newClusterHarness(t *testing.T, opts ...harnessOpt) (*harness, *tableCluster) {
	t.Helper()
	h := newHarness(t, "sqlite", opts...)
	now := time.Now().UTC().Truncate(time.Second)
	o1, o2 := store.Scope{OrgID: "o1", UserID: "u1"}, store.Scope{OrgID: "o2", UserID: "u2"}
	cl := &tableCluster{
		nodes: []store.Node{
			{ID: "n1", Addr: "node1:3000", Version: "v1", StartedAt: now, HeartbeatAt: now, Load: 2, Leases: 2, Live: true},
			{ID: "n2", Addr: "node2:3000", Version: "v1", StartedAt: now, HeartbeatAt: now, Draining: true, Live: true},
		},
		leases: []store.Lease{
			{LeaseRef: store.LeaseRef{Scope: o1, Kind: store.LeaseAgent, Key: "a1"}, NodeID: "n1", Epoch: 3, ExpiresAt: now.Add(15 * time.Second), Live: true},
			{LeaseRef: store.LeaseRef{Scope: o1, Kind: store.LeaseGroup, Key: "g1"}, NodeID: "n2", Epoch: 1, ExpiresAt: now.Add(15 * time.Second), Live: true},
			{LeaseRef: store.LeaseRef{Scope: o2, Kind: store.LeaseAgent, Key: "secret-agent"}, NodeID: "n1", Epoch: 1, ExpiresAt: now.Add(15 * time.Second), Live: true},
		},
	}
	h.api.MountCluster(cl)
	return h, cl
}

// An admin sees the nodes and their own scope's leases, never another
// tenant's; members and viewers are refused.
func TestClusterRoute(t *testing.T) {
	h, cl := newClusterHarness(t, withAuth)
	o1 := store.Scope{OrgID: "o1", UserID: "u1"}
	_, admin := h.issue(o1, auth.RoleAdmin, nil)
	_, member := h.issue(o1, auth.RoleMember, nil)
	_, viewer := h.issue(o1, auth.RoleViewer, nil)

	r := h.must(http.StatusOK, request{method: "GET", path: "/api/cluster", header: bearer(admin)})
	var got ClusterStatus
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.NodeID != "n1" || len(got.Nodes) != 2 || got.Nodes[1].ID != "n2" || !got.Nodes[1].Draining || got.Nodes[0].Load != 2 {
		t.Fatalf("nodes: %s", r.body)
	}
	keys := []string{}
	for _, l := range got.Leases {
		keys = append(keys, l.Kind+":"+l.Key+"@"+l.NodeID+fmt.Sprintf("#%d", l.Epoch))
	}
	if !slices.Equal(keys, []string{"agent:a1@n1#3", "group:g1@n2#1"}) {
		t.Fatalf("leases %v: %s", keys, r.body)
	}
	var raw map[string]any
	_ = json.Unmarshal(r.body, &raw)
	lease := raw["leases"].([]any)[0].(map[string]any)
	for _, k := range []string{"kind", "key", "node_id", "epoch", "expires_at"} {
		if _, ok := lease[k]; !ok {
			t.Errorf("a lease has no %q: %v", k, lease)
		}
	}
	if _, ok := lease["scope"]; ok {
		t.Errorf("a lease shows its scope: %v", lease)
	}
	if got := cl.lastScope(); got != o1 {
		t.Fatalf("asked for scope %+v, want the token's", got)
	}

	h.wantError(http.StatusForbidden, "", request{method: "GET", path: "/api/cluster", header: bearer(viewer)})
	h.wantError(http.StatusForbidden, "", request{method: "GET", path: "/api/cluster", header: bearer(member)})
	h.wantError(http.StatusUnauthorized, "", request{method: "GET", path: "/api/cluster", header: map[string]string{"x-org-id": "", "x-user-id": ""}})
	h.wantError(http.StatusForbidden, "scope_mismatch", request{method: "GET", path: "/api/cluster", header: bearer(admin, "x-org-id", "o2", "x-user-id", "u2")})
}

// Bad input is a 4xx JSON error; a store that cannot answer is a 503.
func TestClusterRouteBadInput(t *testing.T) {
	h, cl := newClusterHarness(t)
	h.wantError(http.StatusBadRequest, "bad_scope", request{method: "GET", path: "/api/cluster", header: map[string]string{"x-org-id": "o 1"}})
	h.wantError(http.StatusBadRequest, "missing_scope", request{method: "GET", path: "/api/cluster", header: map[string]string{"x-user-id": ""}})
	h.wantError(http.StatusMethodNotAllowed, "", request{method: "POST", path: "/api/cluster", body: `{}`})
	h.wantError(http.StatusMethodNotAllowed, "", request{method: "DELETE", path: "/api/cluster"})
	h.wantError(http.StatusNotFound, "", request{method: "GET", path: "/api/cluster/n1"})
	h.wantError(http.StatusBadRequest, "", request{method: "GET", path: "/api/cluster?x=%00"})

	// An empty cluster is empty lists, not nulls.
	r := h.must(http.StatusOK, request{method: "GET", path: "/api/cluster", header: map[string]string{"x-org-id": "o9"}})
	if m := r.json(t); m["leases"] == nil || m["nodes"] == nil {
		t.Fatalf("null lists: %s", r.body)
	}
	cl.mu.Lock()
	cl.fail = fmt.Errorf("list nodes: %w", store.ErrUnavailable)
	cl.mu.Unlock()
	h.wantError(http.StatusServiceUnavailable, "store_unavailable", request{method: "GET", path: "/api/cluster"})
}

// /readyz answers 503 {"status":"draining"} while the node drains, and is
// ready again when it is not.
func TestReadyzWhileDraining(t *testing.T) {
	h, cl := newClusterHarness(t)
	h.must(http.StatusOK, request{method: "GET", path: "/readyz"})
	cl.draining.Store(true)
	r := h.must(http.StatusServiceUnavailable, request{method: "GET", path: "/readyz"})
	if m := r.json(t); m["status"] != "draining" || len(m) != 1 {
		t.Fatalf("draining: %s", r.body)
	}
	// The API itself still answers: requests already routed here finish.
	h.must(http.StatusOK, request{method: "GET", path: "/api/cluster"})
	cl.draining.Store(false)
	h.must(http.StatusOK, request{method: "GET", path: "/readyz"})
}

// The route is in the served document, admin only, with its answer's schema;
// the document still matches the router.
func TestClusterDocumented(t *testing.T) {
	h, _ := newClusterHarness(t)
	raw := servedDocument(t, h)
	doc := loadDocument(t, raw)
	ops, err := Operations(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(ops, func(o Operation) bool {
		return o.Method == http.MethodGet && o.Path == "/api/cluster" && o.Role == auth.RoleAdmin
	}) {
		t.Fatal("GET /api/cluster is not documented as an admin route")
	}
	if problems := routerMismatches(h.api.Engine(), ops); len(problems) > 0 {
		t.Fatalf("the document does not match the router: %v", problems)
	}
	schema := doc.Paths.Find("/api/cluster").Get.Responses.Status(200).Value.Content.Get("application/json").Schema
	if schema.Ref == "" {
		t.Fatal("no schema for the answer")
	}
	name := schema.Ref[len("#/components/schemas/"):]
	for _, p := range []string{"node_id", "nodes", "leases"} {
		if doc.Components.Schemas[name].Value.Properties[p] == nil {
			t.Errorf("%s has no property %s", name, p)
		}
	}
	ready := doc.Paths.Find("/readyz").Get.Responses.Status(503)
	if ready == nil || len(ready.Value.Content.Get("application/json").Schema.Value.OneOf) != 2 {
		t.Fatal("/readyz's 503 does not document the draining answer")
	}
}

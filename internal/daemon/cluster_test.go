package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/httpapi"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
)

// testLogger writes the daemon's warnings and errors to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// clusterConfig is a node's config on a free loopback port over dbURL (""
// for SQLite in its own data dir) and redisURL ("" for none).
func clusterConfig(t *testing.T, nodeID, dbURL, redisURL string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Port = 0
	cfg.DataDir = t.TempDir()
	cfg.AgentIdleTimeout = config.Duration(time.Minute)
	cfg.DatabaseURL, cfg.RedisURL = dbURL, redisURL
	cfg.NodeID = nodeID
	cfg.LeaseTTL = config.Duration(3 * time.Second)
	cfg.Auth.Mode = config.AuthToken
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startNode runs a daemon until the test ends (or Close is called).
func startNode(t *testing.T, cfg config.Config, model llm.Provider, redisPrefix string) *Main {
	t.Helper()
	m := &Main{Config: cfg, Logger: testLogger(t), Model: model, RedisPrefix: redisPrefix, Version: "test"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatalf("start node %s: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { closeNode(t, m) })
	return m
}

func closeNode(t *testing.T, m *Main) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Errorf("close node %s: %v", m.NodeID(), err)
	}
}

// issueToken stores a token of role in scope, as `openintern tokens create`
// does, and returns its secret.
func issueToken(t *testing.T, st store.Store, scope store.Scope, role auth.Role) string {
	t.Helper()
	tok, secret, err := auth.Issue(auth.TokenRequest{Scope: scope, Name: "test " + string(role), Role: string(role), Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.(store.TokenStore).CreateToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	return secret
}

// call sends a request with a bearer token and returns the status and body.
func call(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

func mustCall(t *testing.T, want int, method, url, token, body string) []byte {
	t.Helper()
	status, raw := call(t, method, url, token, body)
	if status != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, url, status, want, raw)
	}
	return raw
}

func clusterOf(t *testing.T, m *Main, token string) httpapi.ClusterStatus {
	t.Helper()
	var st httpapi.ClusterStatus
	if err := json.Unmarshal(mustCall(t, http.StatusOK, "GET", m.URL()+"/api/cluster", token, ""), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nodeByID(st httpapi.ClusterStatus, id string) (store.Node, bool) {
	i := slices.IndexFunc(st.Nodes, func(n store.Node) bool { return n.ID == id })
	if i < 0 {
		return store.Node{}, false
	}
	return st.Nodes[i], true
}

func agentLease(st httpapi.ClusterStatus, agentID string) (store.Lease, bool) {
	i := slices.IndexFunc(st.Leases, func(l store.Lease) bool { return l.Kind == store.LeaseAgent && l.Key == agentID })
	if i < 0 {
		return store.Lease{}, false
	}
	return st.Leases[i], true
}

// runsOf lists the agent's runs, newest first.
func runsOf(t *testing.T, m *Main, token, agentID string) []store.Run {
	t.Helper()
	var page struct {
		Runs []store.Run `json:"runs"`
	}
	if err := json.Unmarshal(mustCall(t, http.StatusOK, "GET", m.URL()+"/api/runs?agent_id="+agentID, token, ""), &page); err != nil {
		t.Fatal(err)
	}
	return page.Runs
}

func completedRuns(runs []store.Run) int {
	n := 0
	for _, r := range runs {
		if r.Status == store.RunCompleted {
			n++
		}
	}
	return n
}

// Two daemons on one PostgreSQL database and Redis: each lists both; a
// message posted on node 1 for an agent node 2 owns runs once, on node 2;
// a node that drains fails /readyz, hands its agent back and the next
// message runs on the other node; a node that exits leaves the list.
func TestTwoNodesShareTheWork(t *testing.T) {
	dbURL, redisURL, prefix := testenv.PostgresURL(t), testenv.RedisURL(t), testenv.RedisPrefix(t)
	model := llmtest.NewServer(t)
	n1 := startNode(t, clusterConfig(t, "n1", dbURL, redisURL), model.Provider(), prefix)
	n2 := startNode(t, clusterConfig(t, "n2", dbURL, redisURL), model.Provider(), prefix)
	scope := store.Scope{OrgID: "o1", UserID: "u1"}
	admin := issueToken(t, n1.Store, scope, auth.RoleAdmin)
	viewer := issueToken(t, n1.Store, scope, auth.RoleViewer)

	// Both nodes see both, live, whichever is asked.
	for _, m := range []*Main{n1, n2} {
		waitFor(t, 20*time.Second, "both nodes live on "+m.NodeID(), func() bool {
			st := clusterOf(t, m, admin)
			a, ok1 := nodeByID(st, "n1")
			b, ok2 := nodeByID(st, "n2")
			return st.NodeID == m.NodeID() && ok1 && ok2 && a.Live && b.Live && !a.Draining && !b.Draining
		})
	}
	st := clusterOf(t, n2, admin)
	if self, _ := nodeByID(st, "n2"); self.Addr != n2.Addr().String() || self.Version != "test" || self.StartedAt.IsZero() {
		t.Errorf("node n2 reports %+v, want addr %s", self, n2.Addr())
	}

	// Refused: a viewer, and bad input.
	if status, raw := call(t, "GET", n1.URL()+"/api/cluster", viewer, ""); status != http.StatusForbidden || !strings.Contains(string(raw), `"error"`) {
		t.Fatalf("viewer: %d %s", status, raw)
	}
	if status, raw := call(t, "GET", n1.URL()+"/api/cluster?org_id=o%20x", admin, ""); status != http.StatusBadRequest || !strings.Contains(string(raw), `"error"`) {
		t.Fatalf("bad scope: %d %s", status, raw)
	}
	if status, _ := call(t, "POST", n1.URL()+"/api/cluster", admin, "{}"); status != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", status)
	}
	if status, _ := call(t, "GET", n1.URL()+"/api/cluster", "", ""); status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", status)
	}

	// Node 2 takes the agent: the first message is posted on node 2, where
	// nobody owns it and both nodes are idle, so it stays there.
	mustCall(t, http.StatusCreated, "POST", n2.URL()+"/api/agents", admin, `{"agent_id":"a1","name":"A"}`)
	mustCall(t, http.StatusAccepted, "POST", n2.URL()+"/api/agents/a1/messages", admin, `{"content":"first"}`)
	waitFor(t, 30*time.Second, "the first run", func() bool { return completedRuns(runsOf(t, n1, admin, "a1")) == 1 })
	var owned store.Lease
	waitFor(t, 10*time.Second, "n2's lease on a1", func() bool {
		var ok bool
		owned, ok = agentLease(clusterOf(t, n1, admin), "a1")
		return ok && owned.NodeID == "n2"
	})
	calls := model.RequestCount()

	// Posted on node 1, it runs on node 2, once.
	mustCall(t, http.StatusAccepted, "POST", n1.URL()+"/api/agents/a1/messages", admin, `{"content":"second"}`)
	waitFor(t, 30*time.Second, "the second run", func() bool { return completedRuns(runsOf(t, n1, admin, "a1")) == 2 })
	if runs := runsOf(t, n2, admin, "a1"); len(runs) != 2 {
		t.Fatalf("%d runs for 2 messages: %+v", len(runs), runs)
	}
	if got := model.RequestCount() - calls; got != 1 {
		t.Fatalf("the second message took %d model calls, want 1", got)
	}
	if l, ok := agentLease(clusterOf(t, n1, admin), "a1"); !ok || l.NodeID != "n2" || l.Epoch != owned.Epoch {
		t.Fatalf("a1's lease is %+v (%v), want n2's epoch %d unchanged: node 1 ran it", l, ok, owned.Epoch)
	}

	// Node 2 drains: /readyz fails at once and stays failed; its agent is
	// handed back; node 1 sees it draining.
	drainCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n2.Drain(drainCtx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	status, raw := call(t, "GET", n2.URL()+"/readyz", "", "")
	if status != http.StatusServiceUnavailable || strings.TrimSpace(string(raw)) != `{"status":"draining"}` {
		t.Fatalf("readyz while draining: %d %s", status, raw)
	}
	mustCall(t, http.StatusOK, "GET", n1.URL()+"/readyz", "", "")
	waitFor(t, 10*time.Second, "n2 draining without leases, seen from n1", func() bool {
		st := clusterOf(t, n1, admin)
		b, _ := nodeByID(st, "n2")
		_, held := agentLease(st, "a1")
		return b.Draining && b.Leases == 0 && !held
	})

	// A message posted on the draining node runs on the other.
	calls = model.RequestCount()
	mustCall(t, http.StatusAccepted, "POST", n2.URL()+"/api/agents/a1/messages", admin, `{"content":"third"}`)
	waitFor(t, 30*time.Second, "the third run", func() bool { return completedRuns(runsOf(t, n1, admin, "a1")) == 3 })
	if l, ok := agentLease(clusterOf(t, n1, admin), "a1"); !ok || l.NodeID != "n1" || l.Epoch <= owned.Epoch {
		t.Fatalf("a1's lease after the drain is %+v (%v), want n1's under a newer epoch than %d", l, ok, owned.Epoch)
	}
	if got := model.RequestCount() - calls; got != 1 {
		t.Fatalf("the third message took %d model calls, want 1", got)
	}

	// A clean exit leaves the cluster at once.
	closeNode(t, n2)
	waitFor(t, 5*time.Second, "n2 gone from n1's list", func() bool {
		_, ok := nodeByID(clusterOf(t, n1, admin), "n2")
		return !ok
	})
}

// On SQLite the cluster is the daemon alone, without leases; /readyz fails
// once it drains.
func TestSingleNodeCluster(t *testing.T) {
	m := startNode(t, clusterConfig(t, "", "", ""), llm.NewOffline(), "")
	scope := store.Scope{OrgID: "o1", UserID: "u1"}
	admin := issueToken(t, m.Store, scope, auth.RoleAdmin)
	member := issueToken(t, m.Store, scope, auth.RoleMember)
	if !config.ValidNodeID(m.NodeID()) {
		t.Fatalf("made-up node id %q", m.NodeID())
	}
	mustCall(t, http.StatusCreated, "POST", m.URL()+"/api/agents", admin, `{"agent_id":"a1","name":"A"}`)
	mustCall(t, http.StatusAccepted, "POST", m.URL()+"/api/agents/a1/messages", admin, `{"content":"hi"}`)
	waitFor(t, 30*time.Second, "the run", func() bool { return completedRuns(runsOf(t, m, admin, "a1")) == 1 })

	st := clusterOf(t, m, admin)
	if st.NodeID != m.NodeID() || len(st.Nodes) != 1 || st.Nodes[0].ID != m.NodeID() || !st.Nodes[0].Live || st.Nodes[0].Addr != m.Addr().String() {
		t.Fatalf("cluster %+v", st)
	}
	if st.Leases == nil || len(st.Leases) != 0 {
		t.Fatalf("leases %+v, want none", st.Leases)
	}
	if status, _ := call(t, "GET", m.URL()+"/api/cluster", member, ""); status != http.StatusForbidden {
		t.Fatalf("member: %d", status)
	}

	mustCall(t, http.StatusOK, "GET", m.URL()+"/readyz", "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	mustCall(t, http.StatusServiceUnavailable, "GET", m.URL()+"/readyz", "", "")
	if st := clusterOf(t, m, admin); !st.Nodes[0].Draining {
		t.Fatalf("not draining: %+v", st.Nodes[0])
	}
}

// fixedRuntime is a node's load and draining state, set by the test.
type fixedRuntime struct {
	load     atomic.Int64
	draining atomic.Bool
}

func (r *fixedRuntime) Load() int      { return int(r.load.Load()) }
func (r *fixedRuntime) Draining() bool { return r.draining.Load() }

// The router sends a control to the owner of its lease, and unowned work to
// the least loaded live node that is not draining, spreading a burst before
// the next heartbeats; a node that joins gets new work within a second.
func TestRouteByLeaseAndLoad(t *testing.T) {
	ctx := t.Context()
	pg, err := postgres.Open(ctx, testenv.PostgresURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	ttl := time.Minute
	heartbeat := func(id string, load int, draining bool) {
		t.Helper()
		if err := pg.HeartbeatNode(ctx, store.Node{ID: id, StartedAt: time.Now(), Load: load, Draining: draining}, ttl); err != nil {
			t.Fatal(err)
		}
	}
	rt := &fixedRuntime{}
	rt.load.Store(5)
	c := newCluster(store.Node{ID: "self"}, pg, rt, slog.New(slog.DiscardHandler))
	clock := time.Now()
	c.now = func() time.Time { return clock }
	heartbeat("self", 5, false)
	heartbeat("busy", 9, false)
	heartbeat("idle", 1, false)
	heartbeat("leaving", 0, true)
	scope := store.Scope{OrgID: "o1", UserID: "u1"}
	wake := func(agent string) events.Control {
		return events.Control{Kind: events.ControlWake, Scope: scope, AgentID: agent}
	}

	// Owned work goes to its owner, whatever its load; this node's to "".
	if _, err := pg.AcquireLease(ctx, store.LeaseRef{Scope: scope, Kind: store.LeaseAgent, Key: "owned"}, "busy", ttl); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.AcquireLease(ctx, store.LeaseRef{Scope: scope, Kind: store.LeaseGroup, Key: "g1"}, "self", ttl); err != nil {
		t.Fatal(err)
	}
	if got := c.Route(ctx, wake("owned")); got != "busy" {
		t.Fatalf("owned agent routed to %q", got)
	}
	if got := c.Route(ctx, events.Control{Kind: events.ControlCancel, Scope: scope, AgentID: "owned", RunID: "r1"}); got != "busy" {
		t.Fatalf("cancel routed to %q", got)
	}
	if got := c.Route(ctx, events.Control{Kind: events.ControlGroup, Scope: scope, GroupID: "g1", RunID: "r2"}); got != "" {
		t.Fatalf("own group routed to %q", got)
	}
	// Another scope's agent of the same id is not owned.
	if got := c.Route(ctx, events.Control{Kind: events.ControlWake, Scope: store.Scope{OrgID: "o2", UserID: "u2"}, AgentID: "owned"}); got == "busy" {
		t.Fatal("another scope's lease routed the wake")
	}

	// Unowned: the least loaded first, never the draining one; a second wake
	// of the same agent goes where the first did; a burst spreads.
	if got := c.Route(ctx, wake("x1")); got != "idle" {
		t.Fatalf("unowned wake routed to %q, want idle", got)
	}
	if got := c.Route(ctx, wake("x1")); got != "idle" {
		t.Fatalf("the same agent's second wake routed to %q", got)
	}
	counts := map[string]int{}
	for i := range 20 {
		counts[c.Route(ctx, wake("b"+string(rune('a'+i))))]++
	}
	if counts["leaving"] != 0 || counts["idle"] == 0 || counts[""] == 0 || counts["busy"] == 0 {
		t.Fatalf("a burst of 20 spread as %v", counts)
	}
	// Pause of unowned work is handled here.
	if got := c.Route(ctx, events.Control{Kind: events.ControlPause, Scope: scope, AgentID: "nobody"}); got != "" {
		t.Fatalf("unowned pause routed to %q", got)
	}

	// A node that joins is picked once the list is a second old.
	heartbeat("new", 0, false)
	clock = clock.Add(routeCacheTTL)
	if got := c.Route(ctx, wake("y1")); got != "new" {
		t.Fatalf("after a node joined, routed to %q", got)
	}

	// While this node drains it takes no unowned work.
	rt.draining.Store(true)
	heartbeat("idle", 100, false)
	heartbeat("busy", 100, false)
	heartbeat("new", 100, false)
	clock = clock.Add(routeCacheTTL)
	if got := c.Route(ctx, wake("z1")); got == "" {
		t.Fatal("a draining node kept new work")
	}
}

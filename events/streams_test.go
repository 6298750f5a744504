package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
)

// handled records, across the dispatchers of a test, which node handled
// which control (by RunID, unique per control in these tests).
type handled struct {
	mu      sync.Mutex
	byRun   map[string][]string // run id -> nodes that handled it, in order
	changed chan struct{}       // closed and replaced on every record
}

func newHandled() *handled {
	return &handled{byRun: map[string][]string{}, changed: make(chan struct{})}
}

func (h *handled) handleFunc(node string) events.HandleFunc {
	return func(c events.Control) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.byRun[c.RunID] = append(h.byRun[c.RunID], node)
		close(h.changed)
		h.changed = make(chan struct{})
	}
}

func (h *handled) nodes(runID string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.byRun[runID]...)
}

// waitFor waits until every run id has been handled at least once and
// returns the nodes that handled each.
func (h *handled) waitFor(t *testing.T, timeout time.Duration, runIDs ...string) map[string][]string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		h.mu.Lock()
		missing := ""
		for _, id := range runIDs {
			if len(h.byRun[id]) == 0 {
				missing = id
				break
			}
		}
		changed := h.changed
		snap := make(map[string][]string, len(runIDs))
		for _, id := range runIDs {
			snap[id] = append([]string(nil), h.byRun[id]...)
		}
		h.mu.Unlock()
		if missing == "" {
			return snap
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("control %s not handled within %s", missing, timeout)
		}
	}
}

// routeTable routes a control by its agent id; unknown agents stay here.
type routeTable struct {
	mu     sync.Mutex
	owners map[string]string
}

func (r *routeTable) set(agentID, node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.owners == nil {
		r.owners = map[string]string{}
	}
	r.owners[agentID] = node
}

func (r *routeTable) route(_ context.Context, c events.Control) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owners[c.AgentID]
}

func newStreamDispatcher(t *testing.T, client *redis.Client, prefix, node string, rt *routeTable, h *handled,
	opts ...events.StreamOption) *events.StreamDispatcher {
	t.Helper()
	d, err := events.NewStreamDispatcher(t.Context(), client, prefix, node, rt.route, h.handleFunc(node), testLogger(t), opts...)
	if err != nil {
		t.Fatalf("NewStreamDispatcher(%s): %v", node, err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

var ctlScope = store.Scope{OrgID: "org-a", UserID: "user-1"}

func wake(agentID, runID string) events.Control {
	return events.Control{Kind: events.ControlWake, Scope: ctlScope, AgentID: agentID, RunID: runID}
}

// TestStreamDispatcherRoutesEachControlToItsOwnerOnce: three nodes, a route
// table; every control is handled on its agent's node exactly once, whoever
// sends it, even after several claim rounds have run.
func TestStreamDispatcherRoutesEachControlToItsOwnerOnce(t *testing.T) {
	client := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t)
	rt, h := &routeTable{}, newHandled()
	opts := []events.StreamOption{events.WithClaimAfter(time.Second), events.WithClaimInterval(100 * time.Millisecond)}
	nodes := map[string]*events.StreamDispatcher{}
	for _, n := range []string{"n1", "n2", "n3"} {
		nodes[n] = newStreamDispatcher(t, client, prefix, n, rt, h, opts...)
		rt.set("agent-"+n, n)
	}
	ctx := t.Context()

	type sent struct{ runID, owner, from string }
	var all []sent
	var ids []string
	for i := range 20 {
		for _, from := range []string{"n1", "n2", "n3"} {
			for _, owner := range []string{"n1", "n2", "n3"} {
				runID := fmt.Sprintf("run-%d-%s-%s", i, from, owner)
				if err := nodes[from].Dispatch(ctx, wake("agent-"+owner, runID)); err != nil {
					t.Fatalf("Dispatch from %s to %s: %v", from, owner, err)
				}
				all = append(all, sent{runID, owner, from})
				ids = append(ids, runID)
			}
		}
	}
	h.waitFor(t, waitTimeout, ids...)
	// Let several claim rounds pass the ClaimAfter of the first entries: a
	// claim of an acknowledged entry would show up as a second handling.
	time.Sleep(1500 * time.Millisecond)
	for _, s := range all {
		got := h.nodes(s.runID)
		if len(got) != 1 || got[0] != s.owner {
			t.Errorf("control %s sent from %s: handled on %v, want once on %s", s.runID, s.from, got, s.owner)
		}
	}
	for n, d := range nodes {
		if !d.Healthy() {
			t.Errorf("%s not healthy", n)
		}
	}
	// Streams stay bounded and hold nothing pending.
	for _, n := range []string{"n1", "n2", "n3"} {
		p, err := client.XPending(ctx, prefix+"ctl:"+n, "ctl").Result()
		if err != nil {
			t.Fatalf("XPENDING %s: %v", n, err)
		}
		if p.Count != 0 {
			t.Errorf("stream of %s has %d pending entries, want 0", n, p.Count)
		}
	}
}

// TestStreamDispatcherCarriesTheControl: the control arrives whole, with
// the sender named in From.
func TestStreamDispatcherCarriesTheControl(t *testing.T) {
	client := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t)
	rt := &routeTable{}
	rt.set("agent-b", "b")
	got := make(chan events.Control, 1)
	noop := func(events.Control) {}
	a, err := events.NewStreamDispatcher(t.Context(), client, prefix, "a", rt.route, noop, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := events.NewStreamDispatcher(t.Context(), client, prefix, "b", rt.route, func(c events.Control) { got <- c }, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := events.Control{Kind: events.ControlCancel, Scope: store.Scope{OrgID: "o", UserID: "u", ProjectID: "p"},
		AgentID: "agent-b", GroupID: "g-1", RunID: "r-1"}
	if err := a.Dispatch(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-got:
		want.From = "a"
		if c != want {
			t.Fatalf("got %+v, want %+v", c, want)
		}
	case <-time.After(waitTimeout):
		t.Fatal("control not handled on b")
	}
}

// TestStreamDispatcherLocalControlOnCallerGoroutine: a control routed to
// this node ("" or its own id) is handled before Dispatch returns.
func TestStreamDispatcherLocalControlOnCallerGoroutine(t *testing.T) {
	client := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t)
	rt, h := &routeTable{}, newHandled()
	rt.set("mine", "n1")
	d := newStreamDispatcher(t, client, prefix, "n1", rt, h)
	for _, c := range []events.Control{wake("unowned", "r-unowned"), wake("mine", "r-mine")} {
		if err := d.Dispatch(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		if got := h.nodes(c.RunID); len(got) != 1 || got[0] != "n1" {
			t.Fatalf("%s handled on %v when Dispatch returned, want [n1]", c.RunID, got)
		}
	}
	if n, err := client.XLen(t.Context(), prefix+"ctl:n1").Result(); err != nil || n != 0 {
		t.Fatalf("own stream length %d (%v), want 0: local controls do not go through Redis", n, err)
	}
	_ = d.Close()
	if err := d.Dispatch(t.Context(), wake("mine", "r-after")); err != events.ErrClosed {
		t.Fatalf("Dispatch after Close: %v, want ErrClosed", err)
	}
	if got := h.nodes("r-after"); len(got) != 0 {
		t.Fatalf("control handled after Close on %v", got)
	}
}

// TestStreamDispatcherDeadNodesControlsAreClaimed: a control sent to a node
// whose dispatcher is gone (never read), and one its consumer read but never
// acknowledged (it died handling it), are both handled by a live node once
// they waited ClaimAfter, and not before.
func TestStreamDispatcherDeadNodesControlsAreClaimed(t *testing.T) {
	client := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t)
	rt, h := &routeTable{}, newHandled()
	const claimAfter = time.Second
	opts := []events.StreamOption{events.WithClaimAfter(claimAfter), events.WithClaimInterval(100 * time.Millisecond)}
	n1 := newStreamDispatcher(t, client, prefix, "n1", rt, h, opts...)
	newStreamDispatcher(t, client, prefix, "n2", rt, h, opts...)
	n3 := newStreamDispatcher(t, client, prefix, "n3", rt, h, opts...)
	rt.set("agent-3", "n3")
	ctx := t.Context()
	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}

	// Pending: n3's consumer read it, then died before acknowledging.
	start := time.Now()
	payload, _ := json.Marshal(wake("agent-3", "run-pending"))
	if err := client.XAdd(ctx, &redis.XAddArgs{Stream: prefix + "ctl:n3", Values: []any{"c", string(payload)}}).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "ctl", Consumer: "n3",
		Streams: []string{prefix + "ctl:n3", ">"}, Count: 10, Block: -1}).Result()
	if err != nil || len(res) != 1 || len(res[0].Messages) != 1 {
		t.Fatalf("reading as n3: %v %+v, want the entry", err, res)
	}
	// Unread: n3 is dead when the control is added to its stream.
	if err := n1.Dispatch(ctx, wake("agent-3", "run-unread")); err != nil {
		t.Fatal(err)
	}

	got := h.waitFor(t, 3*claimAfter+waitTimeout, "run-unread", "run-pending")
	took := time.Since(start)
	t.Logf("claimed after %s", took)
	if took < claimAfter*9/10 {
		t.Errorf("claimed after %s, before ClaimAfter %s", took, claimAfter)
	}
	time.Sleep(claimAfter + 300*time.Millisecond) // a claimed entry must not be claimed again
	for _, id := range []string{"run-unread", "run-pending"} {
		got[id] = h.nodes(id)
		if len(got[id]) != 1 || (got[id][0] != "n1" && got[id][0] != "n2") {
			t.Errorf("%s handled on %v, want once on n1 or n2", id, got[id])
		}
	}
}

// TestStreamDispatcherClaimsUnreadControls: a control added to the stream of
// a node that stopped reading, and never delivered to any consumer, is read
// and handled by a live node after ClaimAfter.
func TestStreamDispatcherClaimsUnreadControls(t *testing.T) {
	client := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t)
	rt, h := &routeTable{}, newHandled()
	const claimAfter = time.Second
	opts := []events.StreamOption{events.WithClaimAfter(claimAfter), events.WithClaimInterval(100 * time.Millisecond)}
	n1 := newStreamDispatcher(t, client, prefix, "n1", rt, h, opts...)
	dead := newStreamDispatcher(t, client, prefix, "dead", rt, h, opts...)
	rt.set("agent-d", "dead")
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}
	// A node that never ran has no group on its stream: the claimer makes one.
	rt.set("agent-g", "ghost")
	start := time.Now()
	for _, c := range []events.Control{wake("agent-d", "run-1"), wake("agent-g", "run-ghost")} {
		if err := n1.Dispatch(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	got := h.waitFor(t, 3*claimAfter+waitTimeout, "run-1", "run-ghost")
	if took := time.Since(start); took < claimAfter*9/10 {
		t.Errorf("claimed after %s, before ClaimAfter %s", took, claimAfter)
	}
	for id, nodes := range got {
		if len(nodes) != 1 || nodes[0] != "n1" {
			t.Errorf("%s handled on %v, want [n1]", id, nodes)
		}
	}
}

// TestStreamDispatcherRestartRereadsPending: a node that read a control and
// stopped before acknowledging it handles it when it starts again, at once
// rather than after ClaimAfter (at least once across a consumer restart).
func TestStreamDispatcherRestartRereadsPending(t *testing.T) {
	client := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t)
	rt, h := &routeTable{}, newHandled()
	opts := []events.StreamOption{events.WithClaimAfter(time.Hour)} // nobody claims: only n2 itself can
	n1 := newStreamDispatcher(t, client, prefix, "n1", rt, h, opts...)
	first := newStreamDispatcher(t, client, prefix, "n2", rt, h, opts...)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	rt.set("agent-2", "n2")
	ctx := t.Context()
	if err := n1.Dispatch(ctx, wake("agent-2", "run-1")); err != nil {
		t.Fatal(err)
	}
	// n2's consumer takes the entry and "crashes" before handling it.
	if err := client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "ctl", Consumer: "n2",
		Streams: []string{prefix + "ctl:n2", ">"}, Count: 10, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	if got := h.nodes("run-1"); len(got) != 0 {
		t.Fatalf("handled on %v before the restart", got)
	}
	newStreamDispatcher(t, client, prefix, "n2", rt, h, opts...)
	got := h.waitFor(t, waitTimeout, "run-1")
	if len(got["run-1"]) != 1 || got["run-1"][0] != "n2" {
		t.Fatalf("handled on %v, want [n2]", got["run-1"])
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		p, err := client.XPending(ctx, prefix+"ctl:n2", "ctl").Result()
		if err == nil && p.Count == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("entry still pending after the restarted node handled it: %+v %v", p, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStreamDispatcherRedisOutage: with Redis down, a control for another
// node is handled here at once, with an error saying so; the dispatchers
// report unhealthy; once Redis is back (empty: no persistence) routing works
// again without restarting them.
func TestStreamDispatcherRedisOutage(t *testing.T) {
	srv, client := privateRedisClient(t)
	prefix := "oi:"
	rt, h := &routeTable{}, newHandled()
	opts := []events.StreamOption{events.WithClaimAfter(time.Hour)}
	n1 := newStreamDispatcher(t, client, prefix, "n1", rt, h, opts...)
	n2 := newStreamDispatcher(t, client, prefix, "n2", rt, h, opts...)
	rt.set("agent-2", "n2")
	ctx := t.Context()
	if err := n1.Dispatch(ctx, wake("agent-2", "run-before")); err != nil {
		t.Fatal(err)
	}
	if got := h.waitFor(t, waitTimeout, "run-before"); got["run-before"][0] != "n2" {
		t.Fatalf("handled on %v, want n2", got["run-before"])
	}

	srv.Stop()
	for i := range 5 {
		runID := fmt.Sprintf("run-down-%d", i)
		start := time.Now()
		err := n1.Dispatch(ctx, wake("agent-2", runID))
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "handled on this node") {
			t.Fatalf("Dispatch with Redis down: err %v, want one saying it was handled here", err)
		}
		if got := h.nodes(runID); len(got) != 1 || got[0] != "n1" {
			t.Fatalf("%s handled on %v when Dispatch returned, want [n1]", runID, got)
		}
		if took > outageBudget {
			t.Errorf("Dispatch with Redis down took %s, want at most %s", took, outageBudget)
		}
	}
	waitUntil(t, "both dispatchers report Redis down", func() bool { return !n1.Healthy() && !n2.Healthy() })

	srv.Start()
	waitUntil(t, "both dispatchers report Redis back", func() bool { return n1.Healthy() && n2.Healthy() })
	deadline := time.Now().Add(waitTimeout)
	for i := 0; ; i++ {
		runID := fmt.Sprintf("run-after-%d", i)
		err := n1.Dispatch(ctx, wake("agent-2", runID))
		if err == nil {
			got := h.waitFor(t, waitTimeout, runID)
			if got[runID][0] != "n2" {
				t.Fatalf("after the restart %s handled on %v, want n2", runID, got[runID])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Dispatch still failing %s after Redis came back: %v", waitTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", waitTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNewStreamDispatcherValidates(t *testing.T) {
	client := testenv.RedisClient(t)
	route := func(context.Context, events.Control) string { return "" }
	handle := func(events.Control) {}
	for name, f := range map[string]func() error{
		"nil client": func() error {
			_, err := events.NewStreamDispatcher(t.Context(), nil, "p:", "n", route, handle, nil)
			return err
		},
		"empty node": func() error {
			_, err := events.NewStreamDispatcher(t.Context(), client, "p:", "", route, handle, nil)
			return err
		},
		"nil route": func() error {
			_, err := events.NewStreamDispatcher(t.Context(), client, "p:", "n", nil, handle, nil)
			return err
		},
		"nil handle": func() error {
			_, err := events.NewStreamDispatcher(t.Context(), client, "p:", "n", route, nil, nil)
			return err
		},
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestNewStreamDispatcherRedisDown: the start needs Redis and says so.
func TestNewStreamDispatcherRedisDown(t *testing.T) {
	srv, client := privateRedisClient(t)
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	d, err := events.NewStreamDispatcher(ctx, client, "p:", "n", func(context.Context, events.Control) string { return "" },
		func(events.Control) {}, testLogger(t))
	if err == nil {
		_ = d.Close()
		t.Fatal("NewStreamDispatcher succeeded with Redis down")
	}
}

package actors

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// cluster is several runtimes ("nodes") in one process over one PostgreSQL
// store, each with its own leases, routed by an in-process dispatcher.
type cluster struct {
	h      *harness
	leases store.LeaseStore
	mu     sync.Mutex
	nodes  map[string]*Runtime
	order  []string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	h := newHarnessOn(t, "postgres", Config{})
	ls, ok := any(h.store).(store.LeaseStore)
	if !ok {
		t.Skip("the PostgreSQL store does not keep leases yet")
	}
	return &cluster{h: h, leases: ls, nodes: map[string]*Runtime{}}
}

// nodeConfig is a node's Config: short leases so a takeover happens within
// seconds, a fast sweep.
func nodeConfig(id string, leases store.LeaseStore) Config {
	return Config{NodeID: id, Leases: leases, LeaseTTL: 3 * time.Second, SweepInterval: 200 * time.Millisecond}
}

// start starts a node over the cluster's store; leases, when not nil,
// replaces the store's (to wrap it).
func (c *cluster) start(cfg Config) *Runtime {
	c.h.t.Helper()
	rt := New(cfg, c.h.store, c.h.bus, c.h.model, c.h.router, quietLogger())
	rt.SetDispatcher(&routeDispatcher{c: c, self: cfg.NodeID})
	c.h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = rt.Stop(ctx)
	})
	c.mu.Lock()
	c.nodes[cfg.NodeID] = rt
	c.order = append(c.order, cfg.NodeID)
	c.mu.Unlock()
	if err := rt.Start(context.Background()); err != nil {
		c.h.t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	return rt
}

// routeDispatcher hands a Control to the node holding its agent's (or
// group's) live lease, else to the sending node unless it drains, else to
// the first node that does not.
type routeDispatcher struct {
	c    *cluster
	self string
}

func (d *routeDispatcher) Dispatch(ctx context.Context, ctl events.Control) error {
	ref := store.LeaseRef{Scope: ctl.Scope, Kind: store.LeaseAgent, Key: ctl.AgentID}
	if ctl.Kind == events.ControlGroup {
		ref = store.LeaseRef{Scope: ctl.Scope, Kind: store.LeaseGroup, Key: ctl.GroupID}
	}
	d.c.mu.Lock()
	nodes := d.c.nodes
	target := ""
	if l, err := d.c.leases.GetLease(ctx, ref); err == nil && l.Live && nodes[l.NodeID] != nil {
		target = l.NodeID
	} else if self := nodes[d.self]; self != nil && !self.Draining() {
		target = d.self
	} else {
		for _, id := range d.c.order {
			if !nodes[id].Draining() {
				target = id
				break
			}
		}
	}
	rt := nodes[target]
	d.c.mu.Unlock()
	if rt != nil {
		rt.HandleControl(ctl)
	}
	return nil
}

func (d *routeDispatcher) Close() error { return nil }

// stalledLeases is the real lease store with renewals that can be held back,
// as when a node is paused past its leases' expiry.
type stalledLeases struct {
	store.LeaseStore
	mu      sync.Mutex
	stalled chan struct{} // non-nil: renewals wait until it is closed or their context ends
}

func (s *stalledLeases) stall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stalled = make(chan struct{})
}

func (s *stalledLeases) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stalled != nil {
		close(s.stalled)
		s.stalled = nil
	}
}

func (s *stalledLeases) RenewLeases(ctx context.Context, nodeID string, ttl time.Duration) ([]store.Lease, error) {
	s.mu.Lock()
	ch := s.stalled
	s.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.LeaseStore.RenewLeases(ctx, nodeID, ttl)
}

// outcomes records the turns' outcomes of one node.
type outcomes struct {
	nopObserver
	mu  sync.Mutex
	got []string
}

func (o *outcomes) TurnDone(outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, outcome)
}

func (o *outcomes) has(outcome string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, g := range o.got {
		if g == outcome {
			return true
		}
	}
	return false
}

func (c *cluster) countEvents(runID, typ string) int {
	c.h.t.Helper()
	_, n, err := c.h.store.ListEvents(context.Background(), testScope, store.EventFilter{RunID: runID, Types: []string{typ}, Limit: 1})
	if err != nil {
		c.h.t.Fatalf("list events: %v", err)
	}
	return n
}

// Every message, woken on both nodes at once, runs once, on one node.
func TestClusterMessageRunsOnceOnOneNode(t *testing.T) {
	c := newCluster(t)
	a := c.start(nodeConfig("node-a", c.leases))
	b := c.start(nodeConfig("node-b", c.leases))
	const agents, perAgent = 4, 3
	var runs []string
	for i := range agents {
		id := "agent-" + string(rune('a'+i))
		c.h.createAgent(id)
		for j := range perAgent {
			runID := c.h.createRun(id, "task "+id+string(rune('0'+j)))
			runs = append(runs, runID)
			// The message is seen by both nodes, as with a wake broadcast.
			a.HandleControl(events.Control{Kind: events.ControlWake, Scope: testScope, AgentID: id})
			b.HandleControl(events.Control{Kind: events.ControlWake, Scope: testScope, AgentID: id})
		}
	}
	for _, id := range runs {
		run := c.h.waitRun(id, 60*time.Second)
		if run.Status != store.RunCompleted {
			t.Fatalf("run %s: %s %+v", id, run.Status, run.Error)
		}
		if n := c.countEvents(id, "run.completed"); n != 1 {
			t.Fatalf("run %s: %d run.completed events, want 1", id, n)
		}
		if n := c.countEvents(id, "run.started"); n != 1 {
			t.Fatalf("run %s: %d run.started events, want 1", id, n)
		}
	}
	if n := c.h.llm.RequestCount(); n != agents*perAgent {
		t.Fatalf("%d LLM calls for %d messages", n, agents*perAgent)
	}
	// Each agent is owned by exactly one of the two nodes.
	for i := range agents {
		id := "agent-" + string(rune('a'+i))
		l, err := c.leases.GetLease(context.Background(), store.LeaseRef{Scope: testScope, Kind: store.LeaseAgent, Key: id})
		if err != nil {
			t.Fatalf("lease of %s: %v", id, err)
		}
		if l.NodeID != "node-a" && l.NodeID != "node-b" {
			t.Fatalf("lease of %s held by %q", id, l.NodeID)
		}
	}
}

// A node whose lease expired (its renewals held back past the TTL) loses the
// run to the other node, which finishes it from the checkpoint; the first
// node's late write is fenced, its run is not failed nor its agent put in
// error, and step 1's model call is not made again.
func TestClusterTakeoverFromCheckpointFencesTheOldOwner(t *testing.T) {
	c := newCluster(t)
	stalled := &stalledLeases{LeaseStore: c.leases}
	obsA := &outcomes{}
	cfgA := nodeConfig("node-a", stalled)
	cfgA.Observer = obsA
	a := c.start(cfgA)
	c.h.createAgent("worker")
	// Step 1 asks for a tool; node-a's step 2 answers only after the lease
	// has gone to node-b; node-b's step 2 answers at once.
	c.h.llm.Enqueue(
		llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "no_such_tool", Arguments: "{}"}}},
		llmtest.Reply{Text: "answer from node-a", Delay: 8 * time.Second},
		llmtest.Reply{Text: "answer from node-b"},
	)
	runID := c.h.createRun("worker", "two steps")
	a.Wake(testScope, "worker")
	waitFor(t, 30*time.Second, "node-a in step 2", func() bool { return c.h.llm.RequestCount() >= 2 })
	stalled.stall()
	t.Cleanup(stalled.resume)
	b := c.start(nodeConfig("node-b", c.leases))

	run := c.h.waitRun(runID, 60*time.Second)
	if run.Status != store.RunCompleted || run.Output != "answer from node-b" {
		t.Fatalf("run ended %s with %q (%+v), want completed by node-b", run.Status, run.Output, run.Error)
	}
	l, err := c.leases.GetLease(context.Background(), store.LeaseRef{Scope: testScope, Kind: store.LeaseAgent, Key: "worker"})
	if err != nil || l.NodeID != "node-b" || l.Epoch < 2 {
		t.Fatalf("lease after takeover: %+v, %v; want node-b's, epoch >= 2", l, err)
	}
	if n := c.countEvents(runID, "run.resumed"); n != 1 {
		t.Fatalf("%d run.resumed events, want 1 (node-b from the checkpoint)", n)
	}
	// node-a's model call returns after the takeover: its finish is fenced.
	waitFor(t, 60*time.Second, "node-a's fenced write", func() bool { return obsA.has("fenced") })
	if n := c.countEvents(runID, "run.completed"); n != 1 {
		t.Fatalf("%d run.completed events, want 1", n)
	}
	if n := c.countEvents(runID, "run.failed"); n != 0 {
		t.Fatalf("%d run.failed events, want 0", n)
	}
	if n := c.countEvents(runID, "step.completed"); n != 2 {
		t.Fatalf("%d step.completed events, want 2 (nothing stored twice)", n)
	}
	// Step 1's model call was made once; step 2's by each node.
	step1, step2 := 0, 0
	for _, req := range c.h.llm.Requests() {
		if last := req.Messages[len(req.Messages)-1]; last.Role == llm.RoleTool {
			step2++
		} else {
			step1++
		}
	}
	if step1 != 1 || step2 != 2 {
		t.Fatalf("model calls: step 1 %d (want 1), step 2 %d (want 2)", step1, step2)
	}
	for _, ch := range c.h.stateChanges("worker") {
		if ch.To == store.AgentError {
			t.Fatalf("agent went to error: %+v", ch)
		}
	}
	// node-a lets the agent go; its lease and actor are gone.
	stalled.resume()
	waitFor(t, 30*time.Second, "node-a to passivate the agent", func() bool { return a.Load() == 0 })
	_ = b
}

// Drain stops the node's agent at its step boundary, releases the lease and
// hands the run to the other node, which resumes it from the checkpoint.
func TestClusterDrainHandsWorkToTheOtherNode(t *testing.T) {
	c := newCluster(t)
	a := c.start(nodeConfig("node-a", c.leases))
	c.h.createAgent("worker")
	c.h.llm.Enqueue(
		llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "no_such_tool", Arguments: "{}"}}, Delay: time.Second},
		llmtest.Reply{Text: "done after the drain"},
	)
	runID := c.h.createRun("worker", "two steps")
	a.Wake(testScope, "worker")
	waitFor(t, 30*time.Second, "node-a's first model call", func() bool { return c.h.llm.RequestCount() >= 1 })
	b := c.start(nodeConfig("node-b", c.leases))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if !a.Draining() || a.Load() != 0 {
		t.Fatalf("after drain: draining %v, load %d", a.Draining(), a.Load())
	}
	run := c.h.waitRun(runID, 60*time.Second)
	if run.Status != store.RunCompleted || run.Output != "done after the drain" {
		t.Fatalf("run ended %s with %q (%+v)", run.Status, run.Output, run.Error)
	}
	if n := c.h.llm.RequestCount(); n != 2 {
		t.Fatalf("%d model calls, want 2 (step 1 not repeated)", n)
	}
	if n := c.countEvents(runID, "run.resumed"); n != 1 {
		t.Fatalf("%d run.resumed events, want 1", n)
	}
	l, err := c.leases.GetLease(context.Background(), store.LeaseRef{Scope: testScope, Kind: store.LeaseAgent, Key: "worker"})
	if err != nil || l.NodeID != "node-b" {
		t.Fatalf("lease after drain: %+v, %v; want node-b's", l, err)
	}
	// A drained node takes no new work: a message woken on it goes nowhere
	// there (the dispatcher routes it to node-b).
	next := c.h.createRun("worker", "after")
	a.Wake(testScope, "worker")
	if run := c.h.waitRun(next, 60*time.Second); run.Status != store.RunCompleted {
		t.Fatalf("run after drain: %s", run.Status)
	}
	if l, _ := c.leases.GetLease(context.Background(), store.LeaseRef{Scope: testScope, Kind: store.LeaseAgent, Key: "worker"}); l.NodeID != "node-b" {
		t.Fatalf("lease moved back to %q", l.NodeID)
	}
	_ = b
}

// Without leases, Drain still stops the agents at their step boundary.
func TestDrainWithoutLeases(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.start()
	h.createAgent("worker")
	h.llm.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "no_such_tool", Arguments: "{}"}}, Delay: 500 * time.Millisecond})
	runID := h.createRun("worker", "two steps")
	waitFor(t, 30*time.Second, "the first model call", func() bool { return h.llm.RequestCount() >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if rt.Load() != 0 {
		t.Fatalf("load %d after drain", rt.Load())
	}
	if run := h.getRun(runID); run.Status != store.RunRunning {
		t.Fatalf("run %s after drain, want running (to resume elsewhere)", run.Status)
	}
	if n := h.llm.RequestCount(); n != 1 {
		t.Fatalf("%d model calls, want 1: the drained agent stopped at its step boundary", n)
	}
	cp, err := h.store.GetCheckpoint(context.Background(), testScope, runID)
	if err != nil || cp.Step != 1 {
		t.Fatalf("checkpoint after drain: %+v, %v; want step 1", cp, err)
	}
}

// A group run noticed on both nodes is orchestrated on one: each member's
// task is given once and the run completes once.
func TestClusterGroupRunOrchestratedOnce(t *testing.T) {
	c := newCluster(t)
	a := c.start(nodeConfig("node-a", c.leases))
	b := c.start(nodeConfig("node-b", c.leases))
	c.h.createTeam("team")
	run, err := a.StartGroupRun(context.Background(), testScope, GroupRunRequest{GroupID: "team", Input: "plan it"})
	if err != nil {
		t.Fatal(err)
	}
	b.HandleControl(events.Control{Kind: events.ControlGroup, Scope: testScope, GroupID: "team", RunID: run.ID})
	a.HandleControl(events.Control{Kind: events.ControlGroup, Scope: testScope, GroupID: "team", RunID: run.ID})
	got := c.h.waitRun(run.ID, 60*time.Second)
	if got.Status != store.RunCompleted {
		t.Fatalf("group run %s: %+v", got.Status, got.Error)
	}
	if n := c.countEvents(run.ID, "message.task"); n != 2 {
		t.Fatalf("%d message.task events, want 2 (one per member)", n)
	}
	if n := c.countEvents(run.ID, "run.completed"); n != 1 {
		t.Fatalf("%d run.completed events, want 1", n)
	}
	if n := c.h.llm.RequestCount(); n != 2 {
		t.Fatalf("%d model calls, want 2 (the worker's and the lead's)", n)
	}
	l, err := c.leases.GetLease(context.Background(), store.LeaseRef{Scope: testScope, Kind: store.LeaseGroup, Key: "team"})
	if err != nil || (l.NodeID != "node-a" && l.NodeID != "node-b") {
		t.Fatalf("group lease: %+v, %v", l, err)
	}
}

// Pausing and resuming an agent another node owns goes through the store
// and the owner: the answer is the state stored, and the owner stops taking
// runs until the resume.
func TestClusterPauseResumeAnAgentOwnedElsewhere(t *testing.T) {
	c := newCluster(t)
	a := c.start(nodeConfig("node-a", c.leases))
	b := c.start(nodeConfig("node-b", c.leases))
	c.h.createAgent("worker")
	first := c.h.createRun("worker", "first")
	b.Wake(testScope, "worker") // nobody owns it: node-b takes it, unless node-a's sweep is first
	c.h.waitRun(first, 60*time.Second)
	l, err := c.leases.GetLease(context.Background(), store.LeaseRef{Scope: testScope, Kind: store.LeaseAgent, Key: "worker"})
	if err != nil || !l.Live {
		t.Fatalf("lease: %+v, %v; want a live one", l, err)
	}
	// other is the node that does not own the agent.
	other := a
	if l.NodeID == "node-a" {
		other = b
	}
	if other.ownsAgent(testScope, "worker") {
		t.Fatalf("both nodes think they own the agent")
	}
	ctx := context.Background()
	state, err := other.Pause(ctx, testScope, "worker")
	if err != nil || state != store.AgentPaused {
		t.Fatalf("pause on the other node: %q, %v", state, err)
	}
	if ag, err := c.h.store.GetAgent(ctx, testScope, "worker"); err != nil || ag.State != store.AgentPaused {
		t.Fatalf("stored state %q, %v", ag.State, err)
	}
	second := c.h.createRun("worker", "second")
	a.Wake(testScope, "worker")
	b.Wake(testScope, "worker")
	// The pause reaches the owner's actor after Pause returns (there is no
	// reply across nodes): a worker that claimed the run just before stops at
	// its next step boundary, so the run is pending or held running, and it
	// must not end while the agent is paused. Give it the time a run takes here.
	time.Sleep(500 * time.Millisecond)
	if run := c.h.getRun(second); run.Status != store.RunPending && run.Status != store.RunRunning {
		t.Fatalf("run of a paused agent is %s", run.Status)
	}
	state, err = other.Resume(ctx, testScope, "worker")
	if err != nil || state != store.AgentIdle {
		t.Fatalf("resume on the other node: %q, %v", state, err)
	}
	if run := c.h.waitRun(second, 60*time.Second); run.Status != store.RunCompleted {
		t.Fatalf("run after resume: %s", run.Status)
	}
	if n := c.h.llm.RequestCount(); n != 2 {
		t.Fatalf("%d model calls, want 2", n)
	}
}

// A group run whose node stops renewing its leases (the group's and its
// member's) is finished by the other node: the member's task is not given
// twice, the run completes once, and the first node, once it renews again,
// lets the agent and the group go.
func TestClusterGroupRunTakenOverWhenItsNodeStalls(t *testing.T) {
	c := newCluster(t)
	stalled := &stalledLeases{LeaseStore: c.leases}
	cfgA := nodeConfig("node-a", stalled)
	// On a slow machine node-a's member call may end, fenced, while it is
	// stalled, and node-a may then take a lease nobody held and do work the
	// assertions below accept; an actor it keeps for that work passivates
	// when idle, like any other, within this timeout.
	cfgA.IdleTimeout = 3 * time.Second
	a := c.start(cfgA)
	c.h.createTeam("team")
	c.h.llm.Enqueue(
		llmtest.Reply{Text: "proposal from node-a", Delay: 8 * time.Second},
		llmtest.Reply{Text: "proposal from node-b"},
		llmtest.Reply{Text: "decision"},
	)
	run, err := a.StartGroupRun(context.Background(), testScope, GroupRunRequest{GroupID: "team", Input: "plan it"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the member's model call on node-a", func() bool { return c.h.llm.RequestCount() >= 1 })
	stalled.stall()
	t.Cleanup(stalled.resume)
	c.start(nodeConfig("node-b", c.leases))

	got := c.h.waitRun(run.ID, 60*time.Second)
	if got.Status != store.RunCompleted || got.Output != "decision" {
		t.Fatalf("group run %s %q (%+v)", got.Status, got.Output, got.Error)
	}
	if n := c.countEvents(run.ID, "message.task"); n != 2 {
		t.Fatalf("%d message.task events, want 2", n)
	}
	if n := c.countEvents(run.ID, "message.proposal"); n != 1 {
		t.Fatalf("%d message.proposal events, want 1", n)
	}
	if n := c.countEvents(run.ID, "run.completed"); n != 1 {
		t.Fatalf("%d run.completed events, want 1", n)
	}
	l, err := c.leases.GetLease(context.Background(), store.LeaseRef{Scope: testScope, Kind: store.LeaseGroup, Key: "team"})
	if err != nil || l.NodeID != "node-b" || l.Epoch < 2 {
		t.Fatalf("group lease: %+v, %v; want node-b's, epoch >= 2", l, err)
	}
	member := childRunID(run.ID, phaseMembers, "hand")
	if m := c.h.getRun(member); m.Output != "proposal from node-b" {
		t.Fatalf("member run output %q, want node-b's", m.Output)
	}
	// node-a's member call is still in flight: the renewal that finds both
	// leases gone cuts it off, and nothing of it is stored.
	stalled.resume()
	deadline := time.Now().Add(60 * time.Second)
	for a.Load() != 0 {
		if time.Now().After(deadline) {
			stats, err := a.Stats(context.Background())
			t.Fatalf("node-a still has %d agents and groups active (%+v, %v), holding leases %+v", a.Load(), stats, err, a.leases.all())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := c.countEvents(member, "run.completed"); n != 1 {
		t.Fatalf("member run: %d run.completed events, want 1", n)
	}
}

// Stop gives the node's leases back, so another node need not wait for
// their expiry; leases without a node id are refused at Start.
func TestClusterStopReleasesLeases(t *testing.T) {
	c := newCluster(t)
	if err := New(Config{Leases: c.leases}, c.h.store, c.h.bus, c.h.model, c.h.router, quietLogger()).Start(context.Background()); err == nil {
		t.Fatal("Start with leases and no node id succeeded")
	}
	a := c.start(nodeConfig("node-a", c.leases))
	c.h.createAgent("worker")
	runID := c.h.createRun("worker", "hello")
	a.Wake(testScope, "worker")
	c.h.waitRun(runID, 60*time.Second)
	ref := store.LeaseRef{Scope: testScope, Kind: store.LeaseAgent, Key: "worker"}
	if l, err := c.leases.GetLease(context.Background(), ref); err != nil || !l.Live || l.NodeID != "node-a" {
		t.Fatalf("lease while active: %+v, %v", l, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if l, err := c.leases.GetLease(context.Background(), ref); err != nil || l.Live {
		t.Fatalf("lease after Stop: %+v, %v; want released", l, err)
	}
}

// A worker confirms its lease before a model call: at once while renewals
// keep it, from the store once they have stalled (as in a frozen process),
// and it is refused when another node has taken the lease meanwhile.
func TestConfirmLeaseAfterRenewalsStall(t *testing.T) {
	c := newCluster(t)
	stalled := &stalledLeases{LeaseStore: c.leases}
	a := c.start(nodeConfig("node-a", stalled))
	c.h.createAgent("worker")
	first := c.h.createRun("worker", "first")
	a.Wake(testScope, "worker")
	c.h.waitRun(first, 60*time.Second)
	ref := store.LeaseRef{Scope: testScope, Kind: store.LeaseAgent, Key: "worker"}
	var held store.Lease
	for _, l := range a.leases.all() {
		if l.LeaseRef == ref {
			held = l
		}
	}
	if held.NodeID != "node-a" {
		t.Fatalf("node-a holds %+v", a.leases.all())
	}
	ctx := context.Background()
	if err := a.confirmLease(ctx, held); err != nil {
		t.Fatalf("confirm a freshly renewed lease: %v", err)
	}
	stalled.stall()
	t.Cleanup(stalled.resume)
	// Past half the TTL without a renewal the store is asked, and the lease
	// is still node-a's.
	time.Sleep(a.cfg.LeaseTTL/2 + 200*time.Millisecond)
	if err := a.confirmLease(ctx, held); err != nil {
		t.Fatalf("confirm a stale but live lease: %v", err)
	}
	waitFor(t, 2*a.cfg.LeaseTTL, "node-a's lease to expire", func() bool {
		l, err := c.leases.GetLease(ctx, ref)
		return err == nil && !l.Live
	})
	taken, err := c.leases.AcquireLease(ctx, ref, "node-b", 30*time.Second)
	if err != nil || taken.Epoch <= held.Epoch {
		t.Fatalf("node-b's acquire: %+v, %v", taken, err)
	}
	if err := a.confirmLease(ctx, held); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("confirm a lease node-b took: %v, want ErrFenced", err)
	}
}

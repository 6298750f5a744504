package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

var leaseCases = []testCase{
	{"Leases/AcquireRenewReleaseEpochs", testLeaseEpochs},
	{"Leases/ExpiryAndTakeover", testLeaseExpiry},
	{"Leases/ConcurrentAcquirersOneWinner", testLeaseConcurrentAcquire},
	{"Leases/StaleFenceRefusesEveryWrite", testLeaseStaleFence},
	{"Leases/CurrentFencePasses", testLeaseCurrentFence},
	{"Leases/GroupFence", testLeaseGroupFence},
	{"Leases/TakeoverRacingWrites", testLeaseTakeoverRace},
	{"Leases/Nodes", testLeaseNodes},
	{"Leases/UnownedWork", testLeaseUnownedWork},
}

func leaseStore(t *testing.T, s store.Store) store.LeaseStore {
	t.Helper()
	ls, ok := s.(clockedStore).Store.(store.LeaseStore)
	if !ok {
		t.Fatalf("%T does not keep leases", s.(clockedStore).Store)
	}
	return ls
}

func agentLease(scope store.Scope, agentID string) store.LeaseRef {
	return store.LeaseRef{Scope: scope, Kind: store.LeaseAgent, Key: agentID}
}

func acquire(t *testing.T, ls store.LeaseStore, ref store.LeaseRef, node string, ttl time.Duration) store.Lease {
	t.Helper()
	l, err := ls.AcquireLease(t.Context(), ref, node, ttl)
	must(t, err)
	if l.NodeID != node || l.LeaseRef != ref || !l.Live {
		t.Fatalf("AcquireLease(%s) = %+v", node, l)
	}
	return l
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline: leases expire on the database's clock, which a test cannot move.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitExpired(t *testing.T, ls store.LeaseStore, ref store.LeaseRef) {
	t.Helper()
	waitFor(t, fmt.Sprintf("the lease on %s %s expires", ref.Kind, ref.Key), func() bool {
		l, err := ls.GetLease(t.Context(), ref)
		must(t, err)
		return !l.Live
	})
}

func testLeaseEpochs(t *testing.T, s store.Store) {
	ctx, ls := t.Context(), leaseStore(t, s)
	ref := agentLease(scopeA, "a")

	_, err := ls.GetLease(ctx, ref)
	wantErr(t, err, store.ErrNotFound)

	l1 := acquire(t, ls, ref, "n1", time.Minute)
	if l1.Epoch != 1 {
		t.Fatalf("first lease epoch = %d, want 1", l1.Epoch)
	}
	if l1.ExpiresAt.Location() != time.UTC || l1.ExpiresAt.Nanosecond()%1000 != 0 {
		t.Fatalf("ExpiresAt = %v: want UTC, whole microseconds", l1.ExpiresAt)
	}
	if d := time.Until(l1.ExpiresAt); d < 50*time.Second || d > 70*time.Second {
		t.Fatalf("ExpiresAt is %v away, want about a minute", d)
	}
	got, err := ls.GetLease(ctx, ref)
	must(t, err)
	wantEqual(t, "GetLease", got, l1)

	// Its holder renews it: same epoch, later expiry.
	again := acquire(t, ls, ref, "n1", 2*time.Minute)
	if again.Epoch != 1 || !again.ExpiresAt.After(l1.ExpiresAt) {
		t.Fatalf("renewing AcquireLease = %+v, after %+v", again, l1)
	}

	// Another node is refused and told who holds it.
	held, err := ls.AcquireLease(ctx, ref, "n2", time.Minute)
	wantErr(t, err, store.ErrLeaseHeld)
	if held.NodeID != "n1" || held.Epoch != 1 || !held.Live {
		t.Fatalf("held lease = %+v", held)
	}

	// The same key in another scope, or of another kind, is another lease.
	for _, other := range []store.LeaseRef{agentLease(scopeB, "a"), {Scope: scopeA, Kind: store.LeaseGroup, Key: "a"}} {
		if l := acquire(t, ls, other, "n2", time.Minute); l.Epoch != 1 {
			t.Fatalf("lease on %+v epoch = %d, want 1", other, l.Epoch)
		}
	}
	leases, err := ls.ListScopeLeases(ctx, scopeA)
	must(t, err)
	if len(leases) != 2 || leases[0].Kind != store.LeaseAgent || leases[0].NodeID != "n1" ||
		leases[1].Kind != store.LeaseGroup || leases[1].NodeID != "n2" {
		t.Fatalf("ListScopeLeases(A) = %+v", leases)
	}
	for _, sc := range []store.Scope{scopeP, scopeO} {
		leases, err := ls.ListScopeLeases(ctx, sc)
		must(t, err)
		if len(leases) != 0 {
			t.Fatalf("ListScopeLeases(%+v) = %+v", sc, leases)
		}
	}

	// RenewLeases renews exactly the node's own.
	renewed, err := ls.RenewLeases(ctx, "n1", 3*time.Minute)
	must(t, err)
	if len(renewed) != 1 || renewed[0].LeaseRef != ref || renewed[0].Epoch != 1 || !renewed[0].Live ||
		time.Until(renewed[0].ExpiresAt) < 150*time.Second {
		t.Fatalf("RenewLeases(n1) = %+v", renewed)
	}
	renewed, err = ls.RenewLeases(ctx, "n3", time.Minute)
	must(t, err)
	if len(renewed) != 0 {
		t.Fatalf("RenewLeases of a node with no lease = %+v", renewed)
	}

	// Releasing a stale lease (another epoch or node) does nothing.
	must(t, ls.ReleaseLease(ctx, store.Lease{LeaseRef: ref, NodeID: "n1", Epoch: 7}))
	must(t, ls.ReleaseLease(ctx, store.Lease{LeaseRef: ref, NodeID: "n2", Epoch: 1}))
	if got, err := ls.GetLease(ctx, ref); err != nil || !got.Live || got.NodeID != "n1" {
		t.Fatalf("after stale releases: %+v, %v", got, err)
	}
	// Releasing the current one ends it at once: the next owner's epoch is 2.
	must(t, ls.ReleaseLease(ctx, l1))
	got, err = ls.GetLease(ctx, ref)
	must(t, err)
	if got.Live || got.Epoch != 1 || got.NodeID != "n1" {
		t.Fatalf("released lease = %+v", got)
	}
	renewed, err = ls.RenewLeases(ctx, "n1", time.Minute)
	must(t, err)
	if len(renewed) != 0 {
		t.Fatalf("RenewLeases renewed a released lease: %+v", renewed)
	}
	if l := acquire(t, ls, ref, "n2", time.Minute); l.Epoch != 2 {
		t.Fatalf("epoch after a release = %d, want 2", l.Epoch)
	}
	// Taking back one's own released lease changes hands too.
	must(t, ls.ReleaseLease(ctx, store.Lease{LeaseRef: ref, NodeID: "n2", Epoch: 2}))
	if l := acquire(t, ls, ref, "n2", time.Minute); l.Epoch != 3 {
		t.Fatalf("epoch when the same node takes its released lease again = %d, want 3", l.Epoch)
	}

	// Bad arguments are refused, storing nothing.
	for _, bad := range []struct {
		ref  store.LeaseRef
		node string
		ttl  time.Duration
	}{
		{store.LeaseRef{Scope: scopeA, Kind: "job", Key: "x"}, "n1", time.Minute},
		{store.LeaseRef{Scope: scopeA, Kind: store.LeaseAgent}, "n1", time.Minute},
		{store.LeaseRef{Scope: store.Scope{OrgID: "o"}, Kind: store.LeaseAgent, Key: "x"}, "n1", time.Minute},
		{agentLease(scopeA, "x"), "", time.Minute},
		{agentLease(scopeA, "x"), "n1", 0},
	} {
		if _, err := ls.AcquireLease(ctx, bad.ref, bad.node, bad.ttl); err == nil || errors.Is(err, store.ErrLeaseHeld) {
			t.Fatalf("AcquireLease(%+v, %q, %v) = %v, want an argument error", bad.ref, bad.node, bad.ttl, err)
		}
	}
	_, err = ls.GetLease(ctx, agentLease(scopeA, "x"))
	wantErr(t, err, store.ErrNotFound)
}

func testLeaseExpiry(t *testing.T, s store.Store) {
	ls := leaseStore(t, s)
	ref := agentLease(scopeA, "a")
	l1 := acquire(t, ls, ref, "n1", time.Second)
	waitExpired(t, ls, ref)
	got, err := ls.GetLease(t.Context(), ref)
	must(t, err)
	if got.Live || got.NodeID != "n1" || got.Epoch != 1 || !got.ExpiresAt.Equal(l1.ExpiresAt) {
		t.Fatalf("expired lease = %+v", got)
	}
	// An expired lease is not renewed: its holder's work must stop.
	renewed, err := ls.RenewLeases(t.Context(), "n1", time.Minute)
	must(t, err)
	if len(renewed) != 0 {
		t.Fatalf("RenewLeases renewed an expired lease: %+v", renewed)
	}
	// Another node takes it over under the next epoch, and n1's release of
	// the old one does not end n2's.
	l2 := acquire(t, ls, ref, "n2", time.Minute)
	if l2.Epoch != 2 {
		t.Fatalf("takeover epoch = %d, want 2", l2.Epoch)
	}
	must(t, ls.ReleaseLease(t.Context(), l1))
	if got, err := ls.GetLease(t.Context(), ref); err != nil || !got.Live || got.NodeID != "n2" || got.Epoch != 2 {
		t.Fatalf("after the old holder's release: %+v, %v", got, err)
	}
	if _, err := ls.AcquireLease(t.Context(), ref, "n1", time.Minute); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("old holder's AcquireLease = %v, want ErrLeaseHeld", err)
	}

	// A lease that lapsed and is taken again by the same node gets a new
	// epoch too: writes fenced by the lapsed one stay refused.
	l3 := acquire(t, ls, agentLease(scopeA, "b"), "n1", time.Second)
	waitExpired(t, ls, l3.LeaseRef)
	if l := acquire(t, ls, l3.LeaseRef, "n1", time.Minute); l.Epoch != 2 {
		t.Fatalf("epoch when the same node takes its lapsed lease again = %d, want 2", l.Epoch)
	}
}

func testLeaseConcurrentAcquire(t *testing.T, s store.Store) {
	ls := leaseStore(t, s)
	ref := agentLease(scopeA, "a")
	const n = 12
	race := func(round int, ttl time.Duration) store.Lease {
		t.Helper()
		var wg sync.WaitGroup
		leases := make([]store.Lease, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				leases[i], errs[i] = ls.AcquireLease(t.Context(), ref, fmt.Sprintf("r%d-n%d", round, i), ttl)
			})
		}
		close(start)
		wg.Wait()
		var winners []store.Lease
		for i := range n {
			switch {
			case errs[i] == nil:
				winners = append(winners, leases[i])
			case !errors.Is(errs[i], store.ErrLeaseHeld):
				t.Fatalf("acquirer %d: %v", i, errs[i])
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d acquirers won (%+v), want exactly 1", round, len(winners), winners)
		}
		for i := range n {
			if errs[i] != nil && (leases[i].NodeID != winners[0].NodeID || leases[i].Epoch != winners[0].Epoch) {
				t.Fatalf("round %d: loser %d was told the holder is %+v, the winner is %+v", round, i, leases[i], winners[0])
			}
		}
		return winners[0]
	}
	// The first TTL outlasts the race by far even on a loaded machine, so
	// no later acquirer may rightly find it expired.
	w1 := race(1, 3*time.Second)
	if w1.Epoch != 1 {
		t.Fatalf("round 1 epoch = %d, want 1", w1.Epoch)
	}
	waitExpired(t, ls, ref)
	w2 := race(2, time.Minute)
	if w2.Epoch != 2 {
		t.Fatalf("round 2 (expired lease) epoch = %d, want 2", w2.Epoch)
	}
}

// fenceSnapshot is what a refused write must leave as it was.
type fenceSnapshot struct {
	Events    int
	Runs      []string // id status steps
	Steps     map[string]int
	State     string
	Unread    int
	Approvals int
}

func snapshot(t *testing.T, s store.Store, scope store.Scope, agentID string) fenceSnapshot {
	t.Helper()
	ctx := t.Context()
	var snap fenceSnapshot
	_, snap.Events = listEvents(t, s, scope, store.EventFilter{})
	runs, _, err := s.ListRuns(ctx, scope, store.RunFilter{}, store.Page{Limit: 200})
	must(t, err)
	snap.Steps = map[string]int{}
	for _, r := range runs {
		snap.Runs = append(snap.Runs, fmt.Sprintf("%s %s %d", r.ID, r.Status, r.Steps))
		cp, err := s.GetCheckpoint(ctx, scope, r.ID)
		switch {
		case err == nil:
			snap.Steps[r.ID] = cp.Step
		case !errors.Is(err, store.ErrNotFound):
			t.Fatalf("GetCheckpoint: %v", err)
		}
	}
	slices.Sort(snap.Runs)
	a, err := s.GetAgent(ctx, scope, agentID)
	must(t, err)
	snap.State = a.State
	_, snap.Unread, err = s.ListMessages(ctx, scope, agentID, store.MessageUnread, store.Page{Limit: 1})
	must(t, err)
	if as, ok := s.(clockedStore).Store.(store.ApprovalStore); ok {
		_, snap.Approvals, err = as.ListApprovals(ctx, scope, store.ApprovalFilter{}, store.Page{Limit: 1})
		must(t, err)
	}
	return snap
}

// fencedWrites makes every fenced write of a turn and of a group step with
// ctx, about the agent's running run and the group run, and returns each
// one's error by name.
func fencedWrites(ctx context.Context, s store.Store, scope store.Scope, agentID string, run, groupRun store.Run) map[string]error {
	ev := func(typ string) []store.Event {
		return []store.Event{{Type: typ, StepID: "step_9", Payload: json.RawMessage(`{"n":9}`)}}
	}
	errs := map[string]error{}
	_, errs["ClaimNextRun"] = s.ClaimNextRun(ctx, scope, agentID, newID("run"))
	_, errs["SaveStep"] = s.SaveStep(ctx, scope, run.ID, &store.Checkpoint{RunID: run.ID, Step: 9, State: json.RawMessage(`{"stale":true}`)}, ev("step.completed"))
	_, errs["SaveStep/events only"] = s.SaveStep(ctx, scope, run.ID, nil, ev("tool.result"))
	_, errs["FinishRun"] = s.FinishRun(ctx, scope, run.ID, store.RunResult{Status: store.RunCompleted, Output: "stale", Steps: 9,
		Outbox: []store.NewMessage{{ID: newID("msg"), AgentID: "other", SessionKey: "s", SenderType: store.SenderAgent, SenderID: agentID, Content: "stale"}}},
		ev("run.completed"))
	_, errs["SetAgentState"] = s.SetAgentState(ctx, scope, agentID, store.AgentPaused, store.Event{Type: "agent.state_changed"})
	_, _, errs["CreateRun"] = s.CreateRun(ctx, store.NewRun{Scope: scope, RunID: newID("run"), MessageID: newID("msg"),
		AgentID: agentID, SessionKey: "s", Input: "stale", SenderType: store.SenderUser, SenderID: "u", Events: ev("message.task")})
	_, errs["AppendEvents"] = s.AppendEvents(ctx, []store.Event{{Scope: scope, AgentID: agentID, Type: "memory.searched"}})
	_, _, errs["CreateGroupRun"] = s.CreateGroupRun(ctx, store.Run{Scope: scope, ID: newID("grun"), GroupID: groupRun.GroupID, Input: "stale"},
		store.Checkpoint{Step: 0, State: json.RawMessage(`{}`)}, ev("run.started"))
	_, errs["SaveStep/group"] = s.SaveStep(ctx, scope, groupRun.ID, &store.Checkpoint{RunID: groupRun.ID, Step: 9, State: json.RawMessage(`{}`)}, ev("step.completed"))
	_, errs["FinishRun/group"] = s.FinishRun(ctx, scope, groupRun.ID, store.RunResult{Status: store.RunCompleted, Output: "stale"}, ev("run.completed"))
	if as, ok := s.(clockedStore).Store.(store.ApprovalStore); ok {
		_, _, errs["WaitForApproval"] = as.WaitForApproval(ctx, scope, store.Approval{
			ID: newID("appr"), RunID: run.ID, Step: 9, CallID: "call_9", CallKey: run.ID + "/9/0/call_9", Tool: "shell",
			Arguments: `{}`, ArgsHash: "h", ExpiresAt: time.Now().Add(time.Hour),
		}, &store.Checkpoint{RunID: run.ID, Step: 9, State: json.RawMessage(`{"stale":true}`)}, ev("tool.requires_approval"))
	}
	return errs
}

// fenceFixture is an agent with a running run and another message waiting,
// and a running group run, all made without a fence.
func fenceFixture(t *testing.T, s store.Store, scope store.Scope, agentID, groupID string) (run, groupRun store.Run) {
	t.Helper()
	ctx := t.Context()
	_, err := s.CreateAgent(ctx, store.Agent{Scope: scope, ID: agentID})
	must(t, err)
	enqueue(t, s, scope, agentID, "s", "first")
	c := claim(t, s, scope, agentID)
	_, err = s.SaveStep(ctx, scope, c.Run.ID, &store.Checkpoint{RunID: c.Run.ID, Step: 1, State: json.RawMessage(`{"ok":1}`)},
		[]store.Event{{Type: "step.completed", StepID: "step_1"}})
	must(t, err)
	createRun(t, s, scope, agentID, "s2", "second")
	groupRun, _, err = s.CreateGroupRun(ctx, store.Run{Scope: scope, ID: newID("grun"), GroupID: groupID, Input: "team"},
		store.Checkpoint{Step: 0, State: json.RawMessage(`{}`)}, []store.Event{{Type: "run.started"}})
	must(t, err)
	return c.Run, groupRun
}

func testLeaseStaleFence(t *testing.T, s store.Store) {
	ctx, ls := t.Context(), leaseStore(t, s)
	run, groupRun := fenceFixture(t, s, scopeA, "a", "g")
	ref := agentLease(scopeA, "a")
	before := snapshot(t, s, scopeA, "a")

	refused := func(why string, fence store.Lease) {
		t.Helper()
		fctx := store.WithFence(ctx, fence)
		for name, err := range fencedWrites(fctx, s, scopeA, "a", run, groupRun) {
			if !errors.Is(err, store.ErrFenced) {
				t.Fatalf("%s: %s = %v, want ErrFenced", why, name, err)
			}
		}
		if after := snapshot(t, s, scopeA, "a"); !equalSnapshots(before, after) {
			t.Fatalf("%s: refused writes changed the store:\n before %+v\n after  %+v", why, before, after)
		}
	}

	// No lease was ever taken on the agent.
	refused("never leased", store.Lease{LeaseRef: ref, NodeID: "n1", Epoch: 1})

	// Released.
	l1 := acquire(t, ls, ref, "n1", time.Minute)
	must(t, ls.ReleaseLease(ctx, l1))
	refused("released", l1)

	// Expired, not yet taken over.
	l2 := acquire(t, ls, ref, "n1", time.Second)
	waitExpired(t, ls, ref)
	refused("expired", l2)

	// Taken over by another node; the old fence and a forged one are stale.
	l3 := acquire(t, ls, ref, "n2", time.Minute)
	refused("taken over", l2)
	refused("older epoch", l1)
	refused("another node at the current epoch", store.Lease{LeaseRef: ref, NodeID: "n1", Epoch: l3.Epoch})
	refused("a lease in another scope", store.Lease{LeaseRef: agentLease(scopeB, "a"), NodeID: "n2", Epoch: l3.Epoch})
}

func equalSnapshots(a, b fenceSnapshot) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func testLeaseCurrentFence(t *testing.T, s store.Store) {
	ctx, ls := t.Context(), leaseStore(t, s)
	run, _ := fenceFixture(t, s, scopeA, "a", "g")
	l := acquire(t, ls, agentLease(scopeA, "a"), "n1", time.Minute)
	// A renewal keeps the fence current.
	l = acquire(t, ls, l.LeaseRef, "n1", time.Minute)
	fctx := store.WithFence(ctx, l)

	c, err := s.ClaimNextRun(fctx, scopeA, "a", newID("run"))
	must(t, err)
	if c.Run.ID != run.ID || !c.Resumed {
		t.Fatalf("fenced claim = %+v, want run %s resumed", c.Run, run.ID)
	}
	_, err = s.SaveStep(fctx, scopeA, run.ID, &store.Checkpoint{RunID: run.ID, Step: 2, State: json.RawMessage(`{"ok":2}`)},
		[]store.Event{{Type: "step.completed", StepID: "step_2"}})
	must(t, err)
	_, err = s.SetAgentState(fctx, scopeA, "a", store.AgentRunning, store.Event{Type: "agent.state_changed"})
	must(t, err)
	_, _, err = s.CreateRun(fctx, store.NewRun{Scope: scopeA, RunID: newID("run"), MessageID: newID("msg"), AgentID: "b",
		SessionKey: "s", Input: "for b", SenderType: store.SenderAgent, SenderID: "a"})
	must(t, err)
	_, err = s.AppendEvents(fctx, []store.Event{{Scope: scopeA, AgentID: "a", Type: "memory.searched"}})
	must(t, err)
	_, err = s.FinishRun(fctx, scopeA, run.ID, store.RunResult{Status: store.RunCompleted, Output: "done", Steps: 2},
		[]store.Event{{Type: "run.completed"}})
	must(t, err)

	cp, err := s.GetCheckpoint(ctx, scopeA, run.ID)
	must(t, err)
	if cp.Step != 2 {
		t.Fatalf("checkpoint step = %d, want 2", cp.Step)
	}
	r, err := s.GetRun(ctx, scopeA, run.ID)
	must(t, err)
	if r.Status != store.RunCompleted || r.Output != "done" {
		t.Fatalf("run = %+v", r)
	}
	// The next claim starts the pending run, then it waits for an approval.
	c, err = s.ClaimNextRun(fctx, scopeA, "a", newID("run"))
	must(t, err)
	if c.Run.Input != "second" {
		t.Fatalf("second fenced claim = %+v", c.Run)
	}
	if as, ok := s.(clockedStore).Store.(store.ApprovalStore); ok {
		_, _, err := as.WaitForApproval(fctx, scopeA, store.Approval{ID: newID("appr"), RunID: c.Run.ID, Step: 1,
			CallID: "call_1", CallKey: c.Run.ID + "/1/0/call_1", Tool: "shell", Arguments: `{}`, ArgsHash: "h",
			ExpiresAt: time.Now().Add(time.Hour)}, &store.Checkpoint{RunID: c.Run.ID, Step: 0}, nil)
		must(t, err)
		r, err := s.GetRun(ctx, scopeA, c.Run.ID)
		must(t, err)
		if r.Status != store.RunWaitingApproval {
			t.Fatalf("run status after a fenced WaitForApproval = %q", r.Status)
		}
	}
	a, err := s.GetAgent(ctx, scopeA, "a")
	must(t, err)
	if a.State != store.AgentRunning {
		t.Fatalf("agent state = %q", a.State)
	}
}

func testLeaseGroupFence(t *testing.T, s store.Store) {
	ctx, ls := t.Context(), leaseStore(t, s)
	ref := store.LeaseRef{Scope: scopeA, Kind: store.LeaseGroup, Key: "g"}
	l := acquire(t, ls, ref, "n1", time.Minute)
	fctx := store.WithFence(ctx, l)

	gr, _, err := s.CreateGroupRun(fctx, store.Run{Scope: scopeA, ID: newID("grun"), GroupID: "g", Input: "team"},
		store.Checkpoint{Step: 0, State: json.RawMessage(`{"phase":0}`)}, []store.Event{{Type: "run.started"}})
	must(t, err)
	child, _, err := s.CreateRun(fctx, store.NewRun{Scope: scopeA, RunID: newID("run"), MessageID: newID("msg"),
		AgentID: "dev", SessionKey: "g/s", GroupID: "g", ParentRunID: gr.ID, Input: "task", SenderType: store.SenderAgent,
		SenderID: "lead", Events: []store.Event{{Type: "message.task"}}})
	must(t, err)
	_, err = s.SaveStep(fctx, scopeA, gr.ID, &store.Checkpoint{RunID: gr.ID, Step: 1, State: json.RawMessage(`{"phase":1}`)},
		[]store.Event{{Type: "step.completed"}})
	must(t, err)

	// Another node takes the group over: the first one's next step and its
	// finish are refused, and the run stays as the last good step left it.
	must(t, ls.ReleaseLease(ctx, l))
	l2 := acquire(t, ls, ref, "n2", time.Minute)
	_, err = s.SaveStep(fctx, scopeA, gr.ID, &store.Checkpoint{RunID: gr.ID, Step: 2, State: json.RawMessage(`{"phase":2}`)},
		[]store.Event{{Type: "step.completed"}})
	wantErr(t, err, store.ErrFenced)
	_, _, err = s.CreateRun(fctx, store.NewRun{Scope: scopeA, RunID: newID("run"), MessageID: newID("msg"),
		AgentID: "qa", SessionKey: "g/s", GroupID: "g", ParentRunID: gr.ID, Input: "task", SenderType: store.SenderAgent, SenderID: "lead"})
	wantErr(t, err, store.ErrFenced)
	_, err = s.FinishRun(fctx, scopeA, gr.ID, store.RunResult{Status: store.RunCompleted, Output: "stale"}, nil)
	wantErr(t, err, store.ErrFenced)
	cp, err := s.GetCheckpoint(ctx, scopeA, gr.ID)
	must(t, err)
	r, err := s.GetRun(ctx, scopeA, gr.ID)
	must(t, err)
	if cp.Step != 1 || string(cp.State) != `{"phase":1}` || r.Status != store.RunRunning {
		t.Fatalf("group run after refused writes: %+v, checkpoint %+v", r, cp)
	}
	children, _, err := s.ListRuns(ctx, scopeA, store.RunFilter{ParentRunID: gr.ID}, store.Page{Limit: 10})
	must(t, err)
	if len(children) != 1 || children[0].ID != child.ID {
		t.Fatalf("children = %+v, want only %s", children, child.ID)
	}
	// The new owner finishes it.
	_, err = s.FinishRun(store.WithFence(ctx, l2), scopeA, gr.ID, store.RunResult{Status: store.RunCompleted, Output: "ok"}, nil)
	must(t, err)
}

// testLeaseTakeoverRace lets a node write steps as fast as it can under a
// short lease it does not renew, while another node takes the lease over the
// moment it expires. No write of the old owner may be stored after the
// takeover: every event the old owner was told was stored is visible to the
// new owner right after its AcquireLease returned, and nothing else.
func testLeaseTakeoverRace(t *testing.T, s store.Store) {
	ctx, ls := t.Context(), leaseStore(t, s)
	const agents = 4
	type result struct {
		stored, atTakeover, after int
		err                       error
	}
	// Many events make each write's statement long after its fence check,
	// so that takeovers land in that window: a check that did not hold the
	// lease until its write commits would let some through.
	stepEvents := make([]store.Event, 1500)
	for i := range stepEvents {
		stepEvents[i] = store.Event{Type: "step.race", Payload: json.RawMessage(`{"text":"` + strings.Repeat("x", 20) + `"}`)}
	}
	results := make([]result, agents)
	runs := make([]store.Run, agents)
	for i := range agents {
		agent := fmt.Sprintf("racer-%d", i)
		enqueue(t, s, scopeA, agent, "s", "go")
		runs[i] = claim(t, s, scopeA, agent).Run
	}
	var wg sync.WaitGroup
	for i, run := range runs {
		ref := agentLease(scopeA, run.AgentID)
		old := acquire(t, ls, ref, "old", 3*time.Second)
		count := func() int {
			_, n, err := s.ListEvents(context.WithoutCancel(ctx), scopeA, store.EventFilter{RunID: run.ID, Types: []string{"step.race"}, Limit: 1})
			if err != nil {
				return -1
			}
			return n
		}
		res := &results[i]
		writerDone := make(chan struct{})
		wg.Go(func() {
			defer close(writerDone)
			fctx := store.WithFence(ctx, old)
			deadline := time.Now().Add(30 * time.Second)
			for step := 1; time.Now().Before(deadline); step++ {
				_, err := s.SaveStep(fctx, scopeA, run.ID, &store.Checkpoint{RunID: run.ID, Step: step}, stepEvents)
				if err != nil {
					res.err = err
					return
				}
				res.stored += len(stepEvents)
			}
			res.err = errors.New("the writer was never fenced")
		})
		wg.Go(func() {
			for {
				_, err := ls.AcquireLease(ctx, ref, "new", time.Minute)
				if err == nil {
					break
				}
				if !errors.Is(err, store.ErrLeaseHeld) {
					res.atTakeover = -1
					<-writerDone
					return
				}
				time.Sleep(time.Millisecond)
			}
			res.atTakeover = count()
			<-writerDone
			res.after = count()
		})
	}
	wg.Wait()
	t.Logf("events stored by each old owner before it was fenced: %+v", results)
	total := 0
	for i, r := range results {
		if !errors.Is(r.err, store.ErrFenced) {
			t.Fatalf("racer %d: the writer ended with %v, want ErrFenced", i, r.err)
		}
		if r.atTakeover < 0 {
			t.Fatalf("racer %d: the takeover failed: %+v", i, r)
		}
		if r.after != r.atTakeover || r.after != r.stored {
			t.Fatalf("racer %d: the old owner was told %d events were stored; the new owner saw %d at its takeover and %d after: "+
				"a stale write landed after the takeover", i, r.stored, r.atTakeover, r.after)
		}
		total += r.stored
	}
	if total == 0 {
		t.Fatal("no old owner stored a step before its lease lapsed: the race was not run")
	}
}

func testLeaseNodes(t *testing.T, s store.Store) {
	ctx, ls := t.Context(), leaseStore(t, s)
	started := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	must(t, ls.HeartbeatNode(ctx, store.Node{ID: "n1", Addr: "10.0.0.1:8080", Version: "v1", Load: 2}, time.Minute))
	must(t, ls.HeartbeatNode(ctx, store.Node{ID: "n2", Addr: "10.0.0.2:8080", Version: "v1", StartedAt: started, Draining: true}, time.Second))
	acquire(t, ls, agentLease(scopeA, "a"), "n1", time.Minute)
	acquire(t, ls, store.LeaseRef{Scope: scopeB, Kind: store.LeaseGroup, Key: "g"}, "n1", time.Minute)
	released := acquire(t, ls, agentLease(scopeA, "b"), "n1", time.Minute)
	must(t, ls.ReleaseLease(ctx, released))

	nodes, err := ls.ListNodes(ctx, time.Hour)
	must(t, err)
	if len(nodes) != 2 {
		t.Fatalf("ListNodes = %+v", nodes)
	}
	byID := map[string]store.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
		checkTime(t, n.ID+" HeartbeatAt", n.HeartbeatAt)
	}
	n1, n2 := byID["n1"], byID["n2"]
	if n1.Addr != "10.0.0.1:8080" || n1.Version != "v1" || n1.Load != 2 || n1.Draining || !n1.Live || n1.Leases != 2 {
		t.Fatalf("n1 = %+v, want 2 live leases", n1)
	}
	checkTime(t, "n1 StartedAt", n1.StartedAt)
	if !n2.StartedAt.Equal(started) || !n2.Draining || n2.Leases != 0 {
		t.Fatalf("n2 = %+v, started %v", n2, started)
	}

	// n2 stops beating: it is listed as not live, after the live ones.
	waitFor(t, "n2 is no longer live", func() bool {
		nodes, err := ls.ListNodes(ctx, time.Hour)
		must(t, err)
		return len(nodes) == 2 && nodes[0].ID == "n1" && nodes[0].Live && nodes[1].ID == "n2" && !nodes[1].Live
	})
	// A heartbeat updates what the node reports and keeps its start.
	must(t, ls.HeartbeatNode(ctx, store.Node{ID: "n1", Addr: "10.0.0.1:9090", Version: "v2", Load: 5, Draining: true}, time.Minute))
	nodes, err = ls.ListNodes(ctx, time.Hour)
	must(t, err)
	if got := nodes[0]; got.ID != "n1" || got.Addr != "10.0.0.1:9090" || got.Version != "v2" || got.Load != 5 || !got.Draining ||
		!got.StartedAt.Equal(n1.StartedAt) || got.HeartbeatAt.Before(n1.HeartbeatAt) {
		t.Fatalf("n1 after a heartbeat = %+v, before %+v", got, n1)
	}
	// A node not heard from within forgetAfter is not listed.
	waitFor(t, "n2 is forgotten", func() bool {
		nodes, err := ls.ListNodes(ctx, 500*time.Millisecond)
		must(t, err)
		return !slices.ContainsFunc(nodes, func(n store.Node) bool { return n.ID == "n2" })
	})

	// A clean exit: the node goes, and its leases are free at once.
	must(t, ls.RemoveNode(ctx, "n1"))
	nodes, err = ls.ListNodes(ctx, time.Hour)
	must(t, err)
	if len(nodes) != 1 || nodes[0].ID != "n2" {
		t.Fatalf("ListNodes after RemoveNode(n1) = %+v", nodes)
	}
	if l := acquire(t, ls, agentLease(scopeA, "a"), "n3", time.Minute); l.Epoch != 2 {
		t.Fatalf("epoch after RemoveNode released the lease = %d, want 2", l.Epoch)
	}
	leases, err := ls.ListScopeLeases(ctx, scopeB)
	must(t, err)
	if len(leases) != 0 {
		t.Fatalf("scope B's leases after RemoveNode(n1) = %+v", leases)
	}
	must(t, ls.RemoveNode(ctx, "never-seen"))

	err = ls.HeartbeatNode(ctx, store.Node{}, time.Minute)
	if err == nil {
		t.Fatal("HeartbeatNode of a node without an id succeeded")
	}
}

func testLeaseUnownedWork(t *testing.T, s store.Store) {
	ctx, ls := t.Context(), leaseStore(t, s)
	enqueue(t, s, scopeA, "free", "s", "hi")
	enqueue(t, s, scopeA, "theirs", "s", "hi")
	enqueue(t, s, scopeA, "released", "s", "hi")
	enqueue(t, s, scopeA, "mine", "s", "hi")
	claim(t, s, scopeA, "mine") // a running run, not unread mail
	enqueue(t, s, scopeB, "theirs", "s", "hi")
	acquire(t, ls, agentLease(scopeA, "theirs"), "n2", time.Minute)
	rel := acquire(t, ls, agentLease(scopeA, "released"), "n2", time.Minute)
	must(t, ls.ReleaseLease(ctx, rel))
	acquire(t, ls, agentLease(scopeA, "mine"), "n1", time.Minute)
	acquire(t, ls, agentLease(scopeA, "idle"), "n1", time.Minute) // no work

	newGroupRun := func(scope store.Scope, group string) store.Run {
		r, _, err := s.CreateGroupRun(ctx, store.Run{Scope: scope, ID: newID("grun"), GroupID: group, Input: "x"},
			store.Checkpoint{}, nil)
		must(t, err)
		return r
	}
	gFree := newGroupRun(scopeA, "g-free")
	newGroupRun(scopeA, "g-theirs")
	gMine := newGroupRun(scopeA, "g-mine")
	gOther := newGroupRun(scopeP, "g-theirs") // same group id in another scope: not covered by A's lease
	done := newGroupRun(scopeA, "g-done")
	_, err := s.FinishRun(ctx, scopeA, done.ID, store.RunResult{Status: store.RunCompleted}, nil)
	must(t, err)
	acquire(t, ls, store.LeaseRef{Scope: scopeA, Kind: store.LeaseGroup, Key: "g-theirs"}, "n2", time.Minute)
	acquire(t, ls, store.LeaseRef{Scope: scopeA, Kind: store.LeaseGroup, Key: "g-mine"}, "n1", time.Minute)

	agents, runs, err := ls.ListUnownedWork(ctx, "n1")
	must(t, err)
	var gotAgents, gotRuns []string
	for _, a := range agents {
		gotAgents = append(gotAgents, a.Scope.UserID+"/"+a.AgentID)
	}
	for _, r := range runs {
		gotRuns = append(gotRuns, r.ID)
	}
	slices.Sort(gotAgents)
	slices.Sort(gotRuns)
	wantAgents := []string{"user-1/free", "user-1/mine", "user-1/released", "user-2/theirs"}
	wantRuns := []string{gFree.ID, gMine.ID, gOther.ID}
	slices.Sort(wantRuns)
	wantEqual(t, "unowned agents for n1", gotAgents, wantAgents)
	wantEqual(t, "unowned group runs for n1", gotRuns, wantRuns)
	for _, r := range runs {
		if r.Status != store.RunRunning || r.AgentID != "" || r.GroupID == "" {
			t.Fatalf("unowned group run = %+v", r)
		}
	}

	// For n2, its own work is not "owned by another node" and n1's is.
	agents, runs, err = ls.ListUnownedWork(ctx, "n2")
	must(t, err)
	gotAgents, gotRuns = nil, nil
	for _, a := range agents {
		gotAgents = append(gotAgents, a.Scope.UserID+"/"+a.AgentID)
	}
	for _, r := range runs {
		gotRuns = append(gotRuns, r.GroupID)
	}
	slices.Sort(gotAgents)
	slices.Sort(gotRuns)
	wantEqual(t, "unowned agents for n2", gotAgents, []string{"user-1/free", "user-1/released", "user-1/theirs", "user-2/theirs"})
	wantEqual(t, "unowned group runs for n2", gotRuns, []string{"g-free", "g-theirs", "g-theirs"})
}

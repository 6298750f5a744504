package storetest

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

var approvalCases = []testCase{
	{"Approvals/WaitHoldsTheQueueUntilResolved", testApprovalWaitAndResolve},
	{"Approvals/ConcurrentResolversOneWins", testApprovalConcurrentResolve},
	{"Approvals/ExpiredCannotBeApproved", testApprovalExpiry},
	{"Approvals/OtherScopesSeeNothing", testApprovalIsolation},
	{"Approvals/CancelWaitingRun", testApprovalCancel},
	{"Approvals/ListFiltersAndPages", testApprovalList},
}

func approvalStore(t *testing.T, s store.Store) store.ApprovalStore {
	t.Helper()
	as, ok := s.(clockedStore).Store.(store.ApprovalStore)
	if !ok {
		t.Fatalf("%T does not keep approvals", s.(clockedStore).Store)
	}
	return as
}

// waitingRun claims a run for agent and makes it wait for an approval of
// its first call of step 1; it returns the claim and the approval.
func waitingRun(t *testing.T, s store.Store, scope store.Scope, agent string, expires time.Time) (store.Claim, store.Approval) {
	t.Helper()
	as := approvalStore(t, s)
	enqueue(t, s, scope, agent, "s", "do it")
	c := claim(t, s, scope, agent)
	a := store.Approval{
		ID: newID("appr"), RunID: c.Run.ID, Step: 1, CallIndex: 0, CallID: "call_1",
		CallKey: c.Run.ID + "/1/0/call_1", Tool: "shell", Arguments: `{"cmd":"rm -rf /tmp/x"}`, ArgsHash: "h1",
		Reason: "shell asks", Rule: "rule-1", ExpiresAt: expires,
	}
	ev := store.Event{Type: "tool.requires_approval", StepID: "step_1", Payload: json.RawMessage(`{"call_id":"call_1"}`)}
	got, evs, err := as.WaitForApproval(t.Context(), scope, a, &store.Checkpoint{RunID: c.Run.ID, Step: 0, State: json.RawMessage(`{"open":1}`)}, []store.Event{ev})
	must(t, err)
	if got.ID != a.ID || got.Status != store.ApprovalPending || got.AgentID != agent || got.ArgsHash != "h1" ||
		got.Arguments != a.Arguments || got.Reason != "shell asks" || got.Rule != "rule-1" || got.CallKey != a.CallKey {
		t.Fatalf("WaitForApproval = %+v", got)
	}
	checkTime(t, "approval CreatedAt", got.CreatedAt)
	if len(evs) != 1 || evs[0].ID == 0 || evs[0].AgentID != agent {
		t.Fatalf("stored events = %+v", evs)
	}
	return c, got
}

func testApprovalWaitAndResolve(t *testing.T, s store.Store) {
	ctx, as := t.Context(), approvalStore(t, s)
	c, a := waitingRun(t, s, scopeA, "a", time.Now().Add(time.Hour))
	r, err := s.GetRun(ctx, scopeA, c.Run.ID)
	must(t, err)
	if r.Status != store.RunWaitingApproval {
		t.Fatalf("run status = %s, want waiting_approval", r.Status)
	}
	// The agent's other work waits behind the run, and no restart resumes it.
	enqueue(t, s, scopeA, "a", "s", "next")
	createRun(t, s, scopeA, "a", "s2", "a run")
	_, err = s.ClaimNextRun(ctx, scopeA, "a", newID("run"))
	wantErr(t, err, store.ErrNoWork)
	has, err := s.HasWork(ctx, scopeA, "a")
	must(t, err)
	if has {
		t.Fatal("HasWork = true while the agent's run waits for an approval")
	}
	// Another agent of the scope is not held.
	enqueue(t, s, scopeA, "b", "s", "hi")
	claim(t, s, scopeA, "b")
	// The same call asks once: waiting again is refused, nothing changes.
	_, _, err = as.WaitForApproval(ctx, scopeA, store.Approval{ID: newID("appr"), RunID: c.Run.ID, CallKey: a.CallKey,
		Tool: "shell", ExpiresAt: time.Now().Add(time.Hour)}, nil, nil)
	wantErr(t, err, store.ErrConflict)

	got, err := as.GetApprovalForCall(ctx, scopeA, c.Run.ID, a.CallKey)
	must(t, err)
	if got.ID != a.ID {
		t.Fatalf("GetApprovalForCall = %+v", got)
	}
	tick(t, s)
	res, evs, err := as.ResolveApproval(ctx, scopeA, a.ID, store.ApprovalDecision{Status: store.ApprovalApproved, By: "user:u1", Reason: "fine"})
	must(t, err)
	if res.Status != store.ApprovalApproved || res.DecidedBy != "user:u1" || res.DecisionReason != "fine" || res.DecidedAt == nil {
		t.Fatalf("resolved = %+v", res)
	}
	if len(evs) != 1 || evs[0].Type != "approval.resolved" || evs[0].RunID != c.Run.ID || evs[0].ID == 0 {
		t.Fatalf("resolve events = %+v", evs)
	}
	stored, _ := listEvents(t, s, scopeA, store.EventFilter{RunID: c.Run.ID, Types: []string{"tool.requires_approval", "approval.resolved"}})
	if len(stored) != 2 || stored[0].Type != "tool.requires_approval" || stored[1].Type != "approval.resolved" {
		t.Fatalf("run events = %+v", stored)
	}
	// Deciding twice is a conflict that returns the decision.
	again, _, err := as.ResolveApproval(ctx, scopeA, a.ID, store.ApprovalDecision{Status: store.ApprovalDenied, By: "user:u2"})
	wantErr(t, err, store.ErrConflict)
	if again.Status != store.ApprovalApproved {
		t.Fatalf("second resolve returned %+v", again)
	}
	// The run is claimable again, from its checkpoint, before the rest.
	rc := claim(t, s, scopeA, "a")
	if !rc.Resumed || rc.Run.ID != c.Run.ID || rc.Checkpoint == nil || string(rc.Checkpoint.State) != `{"open":1}` {
		t.Fatalf("claim after approval = %+v", rc)
	}
	// A decided call is not waited for again.
	_, _, err = as.WaitForApproval(ctx, scopeA, store.Approval{ID: newID("appr"), RunID: c.Run.ID, CallKey: a.CallKey,
		Tool: "shell", ExpiresAt: time.Now().Add(time.Hour)}, nil, nil)
	wantErr(t, err, store.ErrConflict)
	r, err = s.GetRun(ctx, scopeA, c.Run.ID)
	must(t, err)
	if r.Status != store.RunRunning {
		t.Fatalf("run status after a refused wait = %s", r.Status)
	}
	finish(t, s, scopeA, c.Run.ID, "done")
	n := claim(t, s, scopeA, "a")
	if n.Resumed || len(n.Messages) != 1 || n.Messages[0].Content != "next" {
		t.Fatalf("claim after the run = %+v", n)
	}
}

func testApprovalConcurrentResolve(t *testing.T, s store.Store) {
	as := approvalStore(t, s)
	_, a := waitingRun(t, s, scopeA, "a", time.Now().Add(time.Hour))
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := store.ApprovalApproved
			if i%2 == 1 {
				st = store.ApprovalDenied
			}
			_, _, errs[i] = as.ResolveApproval(t.Context(), scopeA, a.ID, store.ApprovalDecision{Status: st, By: "user:x"})
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("resolve: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d resolvers won, want exactly 1 (%v)", wins, errs)
	}
	evs, _ := listEvents(t, s, scopeA, store.EventFilter{RunID: a.RunID, Types: []string{"approval.resolved"}})
	if len(evs) != 1 {
		t.Fatalf("%d approval.resolved events, want 1", len(evs))
	}
}

func testApprovalExpiry(t *testing.T, s store.Store) {
	ctx, as := t.Context(), approvalStore(t, s)
	past := time.Now().Add(-time.Minute)
	c, a := waitingRun(t, s, scopeA, "a", past)
	_, b := waitingRun(t, s, scopeB, "a", time.Now().Add(time.Hour))
	due, err := as.DueApprovals(ctx, time.Now(), 10)
	must(t, err)
	if len(due) != 1 || due[0].ID != a.ID || due[0].Scope != scopeA {
		t.Fatalf("DueApprovals = %+v, want only %s", due, a.ID)
	}
	got, _, err := as.ResolveApproval(ctx, scopeA, a.ID, store.ApprovalDecision{Status: store.ApprovalApproved, By: "user:u1"})
	wantErr(t, err, store.ErrApprovalExpired)
	if got.Status != store.ApprovalExpired || got.DecisionReason != "expired" {
		t.Fatalf("approve after expiry = %+v", got)
	}
	// It is expired for good, and its run goes on.
	stored, err := as.GetApproval(ctx, scopeA, a.ID)
	must(t, err)
	if stored.Status != store.ApprovalExpired {
		t.Fatalf("stored = %+v", stored)
	}
	if r := claim(t, s, scopeA, "a"); r.Run.ID != c.Run.ID || !r.Resumed {
		t.Fatalf("claim after expiry = %+v", r.Run)
	}
	due, err = as.DueApprovals(ctx, time.Now(), 10)
	must(t, err)
	if len(due) != 0 {
		t.Fatalf("DueApprovals after expiry = %+v", due)
	}
	// The sweep's own decision.
	got, _, err = as.ResolveApproval(ctx, scopeB, b.ID, store.ApprovalDecision{Status: store.ApprovalExpired})
	must(t, err)
	if got.Status != store.ApprovalExpired || got.DecidedBy != "system" {
		t.Fatalf("expire = %+v", got)
	}
}

func testApprovalIsolation(t *testing.T, s store.Store) {
	ctx, as := t.Context(), approvalStore(t, s)
	c, a := waitingRun(t, s, scopeA, "a", time.Now().Add(time.Hour))
	for _, o := range otherScopes {
		_, err := as.GetApproval(ctx, o, a.ID)
		wantErr(t, err, store.ErrNotFound)
		_, err = as.GetApprovalForCall(ctx, o, c.Run.ID, a.CallKey)
		wantErr(t, err, store.ErrNotFound)
		_, _, err = as.ResolveApproval(ctx, o, a.ID, store.ApprovalDecision{Status: store.ApprovalApproved})
		wantErr(t, err, store.ErrNotFound)
		list, total, err := as.ListApprovals(ctx, o, store.ApprovalFilter{}, store.Page{})
		must(t, err)
		if len(list) != 0 || total != 0 {
			t.Fatalf("%+v lists %d approvals of another scope", o, total)
		}
		_, _, err = as.WaitForApproval(ctx, o, store.Approval{ID: newID("appr"), RunID: c.Run.ID, CallKey: "k", Tool: "t",
			ExpiresAt: time.Now().Add(time.Hour)}, nil, nil)
		wantErr(t, err, store.ErrNotFound)
	}
	got, err := as.GetApproval(ctx, scopeA, a.ID)
	must(t, err)
	if got.Status != store.ApprovalPending {
		t.Fatalf("after other scopes tried: %+v", got)
	}
}

func testApprovalCancel(t *testing.T, s store.Store) {
	ctx, as := t.Context(), approvalStore(t, s)
	c, a := waitingRun(t, s, scopeA, "a", time.Now().Add(time.Hour))
	r, err := s.CancelRun(ctx, scopeA, c.Run.ID)
	must(t, err)
	if r.Status != store.RunRunning || !r.CancelRequested {
		t.Fatalf("cancelled waiting run = %+v, want running with cancel requested", r)
	}
	got, err := as.GetApproval(ctx, scopeA, a.ID)
	must(t, err)
	if got.Status != store.ApprovalDenied || got.DecidedBy != "system" {
		t.Fatalf("approval of a cancelled run = %+v", got)
	}
	_, _, err = as.ResolveApproval(ctx, scopeA, a.ID, store.ApprovalDecision{Status: store.ApprovalApproved})
	wantErr(t, err, store.ErrConflict)
	rc := claim(t, s, scopeA, "a")
	if rc.Run.ID != c.Run.ID || !rc.Run.CancelRequested {
		t.Fatalf("claim of the cancelled run = %+v", rc.Run)
	}
}

func testApprovalList(t *testing.T, s store.Store) {
	ctx, as := t.Context(), approvalStore(t, s)
	_, a1 := waitingRun(t, s, scopeA, "a", time.Now().Add(time.Hour))
	tick(t, s)
	_, a2 := waitingRun(t, s, scopeA, "b", time.Now().Add(time.Hour))
	tick(t, s)
	_, a3 := waitingRun(t, s, scopeA, "c", time.Now().Add(time.Hour))
	_, _, err := as.ResolveApproval(ctx, scopeA, a2.ID, store.ApprovalDecision{Status: store.ApprovalDenied, By: "user:u"})
	must(t, err)
	ids := func(l []store.Approval) []string {
		out := []string{}
		for _, a := range l {
			out = append(out, a.ID)
		}
		return out
	}
	list, total, err := as.ListApprovals(ctx, scopeA, store.ApprovalFilter{Status: store.ApprovalPending}, store.Page{})
	must(t, err)
	wantEqual(t, "pending, newest first", ids(list), []string{a3.ID, a1.ID})
	if total != 2 {
		t.Fatalf("total = %d", total)
	}
	list, total, err = as.ListApprovals(ctx, scopeA, store.ApprovalFilter{}, store.Page{Offset: 1, Limit: 1})
	must(t, err)
	wantEqual(t, "second page", ids(list), []string{a2.ID})
	if total != 3 {
		t.Fatalf("total = %d", total)
	}
	list, _, err = as.ListApprovals(ctx, scopeA, store.ApprovalFilter{AgentID: "a"}, store.Page{})
	must(t, err)
	wantEqual(t, "agent a", ids(list), []string{a1.ID})
	list, _, err = as.ListApprovals(ctx, scopeA, store.ApprovalFilter{RunID: a3.RunID}, store.Page{})
	must(t, err)
	wantEqual(t, "run of c", ids(list), []string{a3.ID})
}

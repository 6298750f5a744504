package storetest

import (
	"testing"

	"github.com/openintern/openintern/store"
)

var runStreamCases = []testCase{
	{"RunStream/NotFound", testRunStreamNotFound},
	{"RunStream/NoEvents", testRunStreamNoEvents},
	{"RunStream/Events", testRunStreamEvents},
}

// testRunStreamNotFound: an unknown run, and a run of another scope (with
// events), are not found.
func testRunStreamNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, _, err := s.RunWithEvents(ctx, scopeA, "run-unknown", store.EventFilter{Limit: 500})
	wantErr(t, err, store.ErrNotFound)

	r, _ := createRun(t, s, scopeA, "a1", "s", "go")
	_, err = s.AppendEvents(ctx, []store.Event{{Scope: scopeA, RunID: r.ID, AgentID: "a1", Type: "step"}})
	must(t, err)
	for _, other := range otherScopes {
		run, evs, err := s.RunWithEvents(ctx, other, r.ID, store.EventFilter{Limit: 500})
		wantErr(t, err, store.ErrNotFound)
		if run.ID != "" || len(evs) != 0 {
			t.Fatalf("RunWithEvents in %+v of another scope's run = %+v, %d events", other, run, len(evs))
		}
	}
}

// testRunStreamNoEvents: a run without events comes with none, as GetRun
// reads it.
func testRunStreamNoEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	r, _ := createRun(t, s, scopeA, "a1", "s", "go")
	stored, err := s.GetRun(ctx, scopeA, r.ID)
	must(t, err)
	run, evs, err := s.RunWithEvents(ctx, scopeA, r.ID, store.EventFilter{Limit: 500, NoTotal: true})
	must(t, err)
	wantEqual(t, "run", run, stored)
	if run.Status != store.RunPending {
		t.Fatalf("status = %q, want pending", run.Status)
	}
	if len(evs) != 0 {
		t.Fatalf("events of a run without any = %+v", evs)
	}
}

// testRunStreamEvents: the run with its status as stored, and its events
// (not another run's) after the cursor, in id order, up to the limit; the
// filter's run is the one asked for.
func testRunStreamEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	r, _ := createRun(t, s, scopeA, "a1", "s", "go")
	other, _ := createRun(t, s, scopeA, "a2", "s", "go")
	c := claim(t, s, scopeA, "a1")
	if c.Run.ID != r.ID {
		t.Fatalf("claimed %s, want %s", c.Run.ID, r.ID)
	}

	var want []store.Event
	for step := 1; step <= 3; step++ {
		evs, err := s.SaveStep(ctx, scopeA, r.ID, &store.Checkpoint{Step: step}, []store.Event{{Type: "llm.called"}, {Type: "step.completed"}})
		must(t, err)
		want = append(want, asRead(evs)...)
		_, err = s.AppendEvents(ctx, []store.Event{{Scope: scopeA, RunID: other.ID, AgentID: "a2", Type: "step"}})
		must(t, err)
	}

	run, evs, err := s.RunWithEvents(ctx, scopeA, r.ID, store.EventFilter{RunID: other.ID, Limit: 500, NoTotal: true})
	must(t, err)
	stored, err := s.GetRun(ctx, scopeA, r.ID)
	must(t, err)
	wantEqual(t, "running run", run, stored)
	if run.Status != store.RunRunning {
		t.Fatalf("status = %q, want running", run.Status)
	}
	wantEqual(t, "events", evs, want)

	done, err := s.FinishRun(ctx, scopeA, r.ID, store.RunResult{Status: store.RunCompleted, Output: "done", Steps: 3},
		[]store.Event{{Type: "run.completed"}})
	must(t, err)
	want = append(want, asRead(done)...)
	cursor := want[2].ID
	run, evs, err = s.RunWithEvents(ctx, scopeA, r.ID, store.EventFilter{AfterID: cursor, Limit: 500})
	must(t, err)
	stored, err = s.GetRun(ctx, scopeA, r.ID)
	must(t, err)
	wantEqual(t, "finished run", run, stored)
	if run.Status != store.RunCompleted {
		t.Fatalf("status = %q, want completed", run.Status)
	}
	wantEqual(t, "events after the cursor", evs, want[3:])

	_, evs, err = s.RunWithEvents(ctx, scopeA, r.ID, store.EventFilter{AfterID: cursor, Limit: 2})
	must(t, err)
	wantEqual(t, "events after the cursor, limited", evs, want[3:5])
	_, evs, err = s.RunWithEvents(ctx, scopeA, r.ID, store.EventFilter{AfterID: want[len(want)-1].ID, Limit: 500})
	must(t, err)
	if len(evs) != 0 {
		t.Fatalf("events after the last = %+v", evs)
	}
}

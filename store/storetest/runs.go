package storetest

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/openintern/openintern/store"
)

var runCases = []testCase{
	{"Run/CreateGet", testRunCreateGet},
	{"Run/CreateConflict", testRunCreateConflict},
	{"Run/CreateRequireAgent", testRunCreateRequireAgent},
	{"Run/List", testRunList},
	{"Run/Isolation", testRunIsolation},
	{"Run/SaveStep", testRunSaveStep},
	{"Run/SaveStepNotFound", testRunSaveStepNotFound},
	{"Run/RunPrev", testRunRunPrev},
	{"Run/Finish", testRunFinish},
	{"Run/FinishConflict", testRunFinishConflict},
	{"Run/FinishRefused", testRunFinishRefused},
	{"Run/CancelPending", testRunCancelPending},
	{"Run/CancelRunning", testRunCancelRunning},
	{"Run/SessionHistory", testRunSessionHistory},
	{"Run/SummaryQueue", testRunSummaryQueue},
}

func testRunCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	nr := store.NewRun{Scope: scopeA, RunID: "r1", MessageID: "m1", AgentID: "a", SessionKey: "s",
		GroupID: "g", Input: "summarise", SenderType: store.SenderUser, SenderID: "alice"}
	r, m, err := s.CreateRun(ctx, nr)
	must(t, err)
	if r.Scope != scopeA || r.ID != "r1" || r.AgentID != "a" || r.SessionKey != "s" || r.GroupID != "g" ||
		r.Input != "summarise" || r.Status != store.RunPending || r.StartedAt != nil || r.EndedAt != nil ||
		r.Steps != 0 || r.Error != nil || r.CancelRequested || r.Output != "" {
		t.Fatalf("CreateRun run = %+v", r)
	}
	checkTime(t, "CreatedAt", r.CreatedAt)
	if m.Scope != scopeA || m.ID != "m1" || m.AgentID != "a" || m.SessionKey != "s" || m.Kind != store.MessageKindRun ||
		m.SenderType != store.SenderUser || m.SenderID != "alice" || m.Content != "summarise" || m.RunID != "r1" ||
		m.Status != store.MessageUnread || m.Seq <= 0 || m.ReadAt != nil {
		t.Fatalf("CreateRun message = %+v", m)
	}
	checkTime(t, "message CreatedAt", m.CreatedAt)
	got, err := s.GetRun(ctx, scopeA, "r1")
	must(t, err)
	wantEqual(t, "GetRun", got, r)
	msgs, _, err := s.ListMessages(ctx, scopeA, "a", "", store.Page{})
	must(t, err)
	wantEqual(t, "run message", msgs, []store.Message{m})
	_, err = s.GetRun(ctx, scopeA, "missing")
	wantErr(t, err, store.ErrNotFound)
	if _, _, err := s.CreateRun(ctx, store.NewRun{Scope: scopeA, MessageID: "m9", AgentID: "a"}); err == nil {
		t.Fatal("CreateRun without a run id succeeded")
	}
}

func testRunCreateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, _, err := s.CreateRun(ctx, store.NewRun{Scope: scopeA, RunID: "r1", MessageID: "m1", AgentID: "a", Input: "x"})
	must(t, err)
	// A taken run id: no message is stored either.
	_, _, err = s.CreateRun(ctx, store.NewRun{Scope: scopeA, RunID: "r1", MessageID: "m2", AgentID: "a", Input: "y"})
	wantErr(t, err, store.ErrConflict)
	// A taken message id: no run is stored either.
	_, _, err = s.CreateRun(ctx, store.NewRun{Scope: scopeA, RunID: "r2", MessageID: "m1", AgentID: "a", Input: "z"})
	wantErr(t, err, store.ErrConflict)
	_, err = s.GetRun(ctx, scopeA, "r2")
	wantErr(t, err, store.ErrNotFound)
	msgs, total, err := s.ListMessages(ctx, scopeA, "", "", store.Page{})
	must(t, err)
	if total != 1 || msgs[0].ID != "m1" || msgs[0].Content != "x" {
		t.Fatalf("messages after conflicts = %+v", msgs)
	}
	// The same ids in another scope are other rows.
	_, _, err = s.CreateRun(ctx, store.NewRun{Scope: scopeB, RunID: "r1", MessageID: "m1", AgentID: "a", Input: "x"})
	must(t, err)
}

func testRunList(t *testing.T, s store.Store) {
	ctx := t.Context()
	mk := func(id, agent, session, group string) store.Run {
		r, _, err := s.CreateRun(ctx, store.NewRun{Scope: scopeA, RunID: id, MessageID: "m-" + id, AgentID: agent,
			SessionKey: session, GroupID: group, Input: id})
		must(t, err)
		return r
	}
	mk("r1", "a", "s1", "")
	r2 := mk("r2", "a", "s2", "g")
	r3 := mk("r3", "b", "s1", "g")
	r4 := mk("r4", "a", "s1", "")
	mk("x1", "a", "s1", "")
	_, _, err := s.CreateRun(ctx, store.NewRun{Scope: scopeB, RunID: "rb", MessageID: "mb", AgentID: "a", Input: "b"})
	must(t, err)
	// r1 (the oldest message of a) runs.
	c := claim(t, s, scopeA, "a")
	if c.Run.ID != "r1" {
		t.Fatalf("claimed %s, want r1", c.Run.ID)
	}
	r1, err := s.GetRun(ctx, scopeA, "r1")
	must(t, err)

	ids := func(runs []store.Run) []string {
		out := make([]string, len(runs))
		for i, r := range runs {
			out[i] = r.ID
		}
		return out
	}
	for _, tc := range []struct {
		filter store.RunFilter
		want   []string
	}{
		{store.RunFilter{}, []string{"x1", "r4", "r3", "r2", "r1"}},
		{store.RunFilter{AgentID: "a"}, []string{"x1", "r4", "r2", "r1"}},
		{store.RunFilter{AgentID: "a", SessionKey: "s1"}, []string{"x1", "r4", "r1"}},
		{store.RunFilter{SessionKey: "s1"}, []string{"x1", "r4", "r3", "r1"}},
		{store.RunFilter{GroupID: "g"}, []string{"r3", "r2"}},
		{store.RunFilter{Status: store.RunRunning}, []string{"r1"}},
		{store.RunFilter{Status: store.RunPending, AgentID: "a"}, []string{"x1", "r4", "r2"}},
		{store.RunFilter{AgentID: "nobody"}, []string{}},
	} {
		runs, total, err := s.ListRuns(ctx, scopeA, tc.filter, store.Page{})
		must(t, err)
		wantEqual(t, "ListRuns ids", ids(runs), tc.want)
		if total != len(tc.want) {
			t.Fatalf("ListRuns(%+v) total = %d, want %d", tc.filter, total, len(tc.want))
		}
	}
	runs, total, err := s.ListRuns(ctx, scopeA, store.RunFilter{}, store.Page{Offset: 1, Limit: 2})
	must(t, err)
	if total != 5 {
		t.Fatalf("paged total = %d, want 5", total)
	}
	wantEqual(t, "page", runs, []store.Run{r4, r3})
	runs, _, err = s.ListRuns(ctx, scopeA, store.RunFilter{Status: store.RunRunning}, store.Page{})
	must(t, err)
	wantEqual(t, "running run", runs, []store.Run{r1})
	_ = r2
}

func testRunIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	pending, _ := createRun(t, s, scopeA, "a", "s", "pending")
	enqueue(t, s, scopeA, "b", "s", "work")
	c := claim(t, s, scopeA, "b")
	for _, sc := range otherScopes {
		for _, id := range []string{pending.ID, c.Run.ID} {
			_, err := s.GetRun(ctx, sc, id)
			wantErr(t, err, store.ErrNotFound)
			_, err = s.CancelRun(ctx, sc, id)
			wantErr(t, err, store.ErrNotFound)
			_, err = s.FinishRun(ctx, sc, id, store.RunResult{Status: store.RunCompleted}, nil)
			wantErr(t, err, store.ErrNotFound)
		}
		runs, total, err := s.ListRuns(ctx, sc, store.RunFilter{}, store.Page{})
		must(t, err)
		if total != 0 || len(runs) != 0 {
			t.Fatalf("scope %+v lists %d runs of scope A", sc, total)
		}
		turns, err := s.SessionHistory(ctx, sc, "b", "s", 10)
		must(t, err)
		if len(turns) != 0 {
			t.Fatalf("scope %+v sees history of scope A", sc)
		}
	}
	// Nothing changed in scope A.
	got, err := s.GetRun(ctx, scopeA, pending.ID)
	must(t, err)
	wantEqual(t, "pending run", got, pending)
	got, err = s.GetRun(ctx, scopeA, c.Run.ID)
	must(t, err)
	if got.Status != store.RunRunning || got.CancelRequested {
		t.Fatalf("running run changed by other scopes: %+v", got)
	}
}

func testRunSaveStep(t *testing.T, s store.Store) {
	ctx := t.Context()
	r, _, err := s.CreateRun(ctx, store.NewRun{Scope: scopeA, RunID: "r1", MessageID: "m1", AgentID: "a",
		GroupID: "g", Input: "go"})
	must(t, err)
	c := claim(t, s, scopeA, "a")
	if c.Run.ID != r.ID {
		t.Fatalf("claimed %s, want %s", c.Run.ID, r.ID)
	}
	state1 := []byte(`{"messages": [{"role":"user","content":"go"}], "z": 1}`)
	events, err := s.SaveStep(ctx, scopeA, "r1", &store.Checkpoint{Step: 1, State: state1}, []store.Event{
		{Type: "llm.called", StepID: "s1", Payload: payload(map[string]int{"n": 1})},
		{Scope: scopeB, Type: "tool.called", StepID: "s1", AgentID: "explicit", Payload: payload("x")},
	})
	must(t, err)
	if len(events) != 2 {
		t.Fatalf("SaveStep returned %d events", len(events))
	}
	for i, e := range events {
		if e.ID <= 0 || e.Scope != scopeA || e.RunID != "r1" || e.GroupID != "g" || e.StepID != "s1" {
			t.Fatalf("event %d = %+v", i, e)
		}
		checkTime(t, "TS", e.TS)
	}
	if events[0].AgentID != "a" || events[1].AgentID != "explicit" {
		t.Fatalf("agent ids = %q, %q; want the run's when missing, else the caller's", events[0].AgentID, events[1].AgentID)
	}
	if events[1].ID <= events[0].ID {
		t.Fatalf("ids not increasing: %v", eventIDs(events))
	}
	listed, _ := listEvents(t, s, scopeA, store.EventFilter{RunID: "r1"})
	wantEqual(t, "listed events", listed, asRead(events))

	got, err := s.GetRun(ctx, scopeA, "r1")
	must(t, err)
	if got.Steps != 1 {
		t.Fatalf("Steps = %d, want 1", got.Steps)
	}
	// The checkpoint is what a resumed claim gets.
	c = claim(t, s, scopeA, "a")
	if !c.Resumed || c.Checkpoint == nil || c.Checkpoint.Step != 1 || c.Checkpoint.RunID != "r1" ||
		!bytes.Equal(c.Checkpoint.State, state1) {
		t.Fatalf("resumed claim = %+v, checkpoint %+v", c, c.Checkpoint)
	}
	checkTime(t, "checkpoint UpdatedAt", c.Checkpoint.UpdatedAt)

	// A later step replaces it; a step without checkpoint leaves it and the step count.
	_, err = s.SaveStep(ctx, scopeA, "r1", &store.Checkpoint{Step: 2, State: []byte(`{"step":2}`)}, nil)
	must(t, err)
	more, err := s.SaveStep(ctx, scopeA, "r1", nil, []store.Event{{Type: "llm.called"}})
	must(t, err)
	if len(more) != 1 || more[0].ID <= events[1].ID {
		t.Fatalf("later event = %+v", more)
	}
	c = claim(t, s, scopeA, "a")
	if c.Checkpoint == nil || c.Checkpoint.Step != 2 || string(c.Checkpoint.State) != `{"step":2}` {
		t.Fatalf("checkpoint after step 2 = %+v", c.Checkpoint)
	}
	got, err = s.GetRun(ctx, scopeA, "r1")
	must(t, err)
	if got.Steps != 2 {
		t.Fatalf("Steps = %d, want 2", got.Steps)
	}
	// Nothing to save is fine.
	none, err := s.SaveStep(ctx, scopeA, "r1", nil, nil)
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("SaveStep(nil, nil) = %v", none)
	}
	if _, err := s.SaveStep(ctx, scopeA, "r1", nil, []store.Event{{Type: ""}}); err == nil {
		t.Fatal("SaveStep with an event without type succeeded")
	}
}

func testRunSaveStepNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRun(t, s, scopeA, "a", "s", "x")
	c := claim(t, s, scopeA, "a")
	for _, sc := range otherScopes {
		_, err := s.SaveStep(ctx, sc, c.Run.ID, &store.Checkpoint{Step: 5, State: []byte(`{}`)},
			[]store.Event{{Type: "llm.called"}})
		wantErr(t, err, store.ErrNotFound)
		if _, total := listEvents(t, s, sc, store.EventFilter{}); total != 0 {
			t.Fatalf("scope %+v got %d events from a failed SaveStep", sc, total)
		}
	}
	_, err := s.SaveStep(ctx, scopeA, "missing", nil, []store.Event{{Type: "llm.called"}})
	wantErr(t, err, store.ErrNotFound)
	if _, total := listEvents(t, s, scopeA, store.EventFilter{}); total != 0 {
		t.Fatalf("failed SaveSteps stored %d events", total)
	}
	got, err := s.GetRun(ctx, scopeA, c.Run.ID)
	must(t, err)
	if got.Steps != 0 {
		t.Fatalf("Steps = %d after failed SaveSteps", got.Steps)
	}
	if c := claim(t, s, scopeA, "a"); c.Checkpoint != nil {
		t.Fatalf("checkpoint stored by a failed SaveStep: %+v", c.Checkpoint)
	}
}

func testRunFinish(t *testing.T, s store.Store) {
	ctx := t.Context()
	msgs := enqueue(t, s, scopeA, "a", "s", "q1", "q2")
	c := claim(t, s, scopeA, "a")
	res := store.RunResult{Status: store.RunFailed, Output: "partial", Steps: 3,
		Error: &store.RunError{Code: "llm_error", Message: "rate limited"},
		Usage: store.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15}}
	events, err := s.FinishRun(ctx, scopeA, c.Run.ID, res, []store.Event{{Type: "run.failed", Payload: payload(res.Error)}})
	must(t, err)
	if len(events) != 1 || events[0].ID <= 0 || events[0].RunID != c.Run.ID || events[0].AgentID != "a" ||
		events[0].Scope != scopeA {
		t.Fatalf("FinishRun events = %+v", events)
	}
	r, err := s.GetRun(ctx, scopeA, c.Run.ID)
	must(t, err)
	if r.Status != store.RunFailed || r.Output != "partial" || r.Steps != 3 || r.Usage != res.Usage {
		t.Fatalf("finished run = %+v", r)
	}
	wantEqual(t, "Error", r.Error, res.Error)
	checkTimePtr(t, "EndedAt", r.EndedAt)
	checkTimePtr(t, "StartedAt", r.StartedAt)
	if r.EndedAt.Before(*r.StartedAt) {
		t.Fatalf("EndedAt %v before StartedAt %v", r.EndedAt, r.StartedAt)
	}
	read, _, err := s.ListMessages(ctx, scopeA, "a", "", store.Page{})
	must(t, err)
	for i, m := range read {
		if m.Seq != msgs[i].Seq || m.Status != store.MessageRead || m.RunID != c.Run.ID {
			t.Fatalf("message after finish = %+v", m)
		}
		checkTimePtr(t, "ReadAt", m.ReadAt)
	}
	listed, _ := listEvents(t, s, scopeA, store.EventFilter{RunID: c.Run.ID})
	wantEqual(t, "events", listed, asRead(events))
	_, err = s.ClaimNextRun(ctx, scopeA, "a", newID("run"))
	wantErr(t, err, store.ErrNoWork)

	// A completed run without error or events.
	enqueue(t, s, scopeA, "a", "s", "q3")
	c = claim(t, s, scopeA, "a")
	none, err := s.FinishRun(ctx, scopeA, c.Run.ID, store.RunResult{Status: store.RunCompleted, Output: "fine"}, nil)
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("FinishRun without events returned %v", none)
	}
	r, err = s.GetRun(ctx, scopeA, c.Run.ID)
	must(t, err)
	if r.Status != store.RunCompleted || r.Error != nil || r.Output != "fine" || r.Usage != (store.Usage{}) {
		t.Fatalf("completed run = %+v", r)
	}
}

// testRunFinishRefused: text a store cannot hold (a NUL: PostgreSQL refuses
// it, SQLite keeps it) is either stored as given or refused with
// store.ErrPermanent, so the caller fails the run instead of retrying the
// write forever; a refused finish stores nothing and the run can still end.
func testRunFinishRefused(t *testing.T, s store.Store) {
	ctx := t.Context()
	enqueue(t, s, scopeA, "a", "s", "q")
	c := claim(t, s, scopeA, "a")
	_, err := s.FinishRun(ctx, scopeA, c.Run.ID, store.RunResult{Status: store.RunCompleted, Output: "a\x00b"},
		[]store.Event{{Type: "run.completed"}})
	if err == nil {
		r, err := s.GetRun(ctx, scopeA, c.Run.ID)
		must(t, err)
		if r.Output != "a\x00b" {
			t.Fatalf("output stored as %q", r.Output)
		}
		return
	}
	if !errors.Is(err, store.ErrPermanent) {
		t.Fatalf("FinishRun with a NUL: %v, want stored or store.ErrPermanent", err)
	}
	refused := err
	r, err := s.GetRun(ctx, scopeA, c.Run.ID)
	must(t, err)
	if r.Status != store.RunRunning {
		t.Fatalf("a refused finish left the run %s", r.Status)
	}
	_, err = s.FinishRun(ctx, scopeA, c.Run.ID, store.RunResult{Status: store.RunFailed,
		Error: &store.RunError{Code: "store_rejected", Message: refused.Error()}}, []store.Event{{Type: "run.failed"}})
	must(t, err)
	evs, _ := listEvents(t, s, scopeA, store.EventFilter{RunID: c.Run.ID})
	if len(evs) != 1 || evs[0].Type != "run.failed" {
		t.Fatalf("events after a refused finish: %+v", evs)
	}
}

func testRunFinishConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	pending, _ := createRun(t, s, scopeA, "a", "s", "later")
	_, err := s.FinishRun(ctx, scopeA, pending.ID, store.RunResult{Status: store.RunCompleted},
		[]store.Event{{Type: "run.completed"}})
	wantErr(t, err, store.ErrConflict)
	_, err = s.FinishRun(ctx, scopeA, "missing", store.RunResult{Status: store.RunCompleted}, nil)
	wantErr(t, err, store.ErrNotFound)
	c := claim(t, s, scopeA, "a")
	if _, err := s.FinishRun(ctx, scopeA, c.Run.ID, store.RunResult{Status: store.RunRunning}, nil); err == nil ||
		errors.Is(err, store.ErrConflict) {
		t.Fatalf("FinishRun with status running: %v, want a validation error", err)
	}
	finish(t, s, scopeA, c.Run.ID, "first")
	_, err = s.FinishRun(ctx, scopeA, c.Run.ID, store.RunResult{Status: store.RunFailed, Output: "second"},
		[]store.Event{{Type: "run.failed"}})
	wantErr(t, err, store.ErrConflict)
	r, err := s.GetRun(ctx, scopeA, c.Run.ID)
	must(t, err)
	if r.Status != store.RunCompleted || r.Output != "first" {
		t.Fatalf("run after a second finish = %+v", r)
	}
	if _, total := listEvents(t, s, scopeA, store.EventFilter{}); total != 0 {
		t.Fatalf("failed FinishRuns stored %d events", total)
	}
}

func testRunCancelPending(t *testing.T, s store.Store) {
	ctx := t.Context()
	r, _ := createRun(t, s, scopeA, "a", "s", "never")
	got, err := s.CancelRun(ctx, scopeA, r.ID)
	must(t, err)
	if got.Status != store.RunCancelled || got.ID != r.ID {
		t.Fatalf("CancelRun = %+v", got)
	}
	checkTimePtr(t, "EndedAt", got.EndedAt)
	stored, err := s.GetRun(ctx, scopeA, r.ID)
	must(t, err)
	wantEqual(t, "stored cancelled run", stored, got)
	msgs, _, err := s.ListMessages(ctx, scopeA, "a", "", store.Page{})
	must(t, err)
	if len(msgs) != 1 || msgs[0].Status != store.MessageRead {
		t.Fatalf("message of a cancelled run = %+v", msgs)
	}
	checkTimePtr(t, "ReadAt", msgs[0].ReadAt)
	_, err = s.ClaimNextRun(ctx, scopeA, "a", newID("run"))
	wantErr(t, err, store.ErrNoWork)
	// Cancelling again: the run has ended.
	again, err := s.CancelRun(ctx, scopeA, r.ID)
	wantErr(t, err, store.ErrConflict)
	if again.ID != r.ID || again.Status != store.RunCancelled {
		t.Fatalf("CancelRun of a cancelled run returned %+v", again)
	}
	_, err = s.CancelRun(ctx, scopeA, "missing")
	wantErr(t, err, store.ErrNotFound)

	// A cancelled pending run is skipped by the claim, which goes on to the next message.
	r2, _ := createRun(t, s, scopeA, "a", "s", "cancel me")
	m := enqueue(t, s, scopeA, "a", "s", "next")
	_, err = s.CancelRun(ctx, scopeA, r2.ID)
	must(t, err)
	c := claim(t, s, scopeA, "a")
	if c.Run.ID == r2.ID || len(c.Messages) != 1 || c.Messages[0].Seq != m[0].Seq {
		t.Fatalf("claim after cancelling = %+v", c)
	}
}

func testRunCancelRunning(t *testing.T, s store.Store) {
	ctx := t.Context()
	enqueue(t, s, scopeA, "a", "s", "long job")
	c := claim(t, s, scopeA, "a")
	got, err := s.CancelRun(ctx, scopeA, c.Run.ID)
	must(t, err)
	if got.Status != store.RunRunning || !got.CancelRequested || got.EndedAt != nil {
		t.Fatalf("CancelRun of a running run = %+v", got)
	}
	stored, err := s.GetRun(ctx, scopeA, c.Run.ID)
	must(t, err)
	wantEqual(t, "stored run", stored, got)
	// The run is still the agent's work until it finishes.
	again := claim(t, s, scopeA, "a")
	if !again.Resumed || again.Run.ID != c.Run.ID || !again.Run.CancelRequested {
		t.Fatalf("claim after cancel request = %+v", again)
	}
	_, err = s.FinishRun(ctx, scopeA, c.Run.ID, store.RunResult{Status: store.RunCancelled}, nil)
	must(t, err)
	ended, err := s.CancelRun(ctx, scopeA, c.Run.ID)
	wantErr(t, err, store.ErrConflict)
	if ended.Status != store.RunCancelled || ended.ID != c.Run.ID {
		t.Fatalf("CancelRun of a finished run returned %+v", ended)
	}
}

func testRunSessionHistory(t *testing.T, s store.Store) {
	ctx := t.Context()
	turn := func(agent, session, input, output, status string) string {
		t.Helper()
		enqueue(t, s, scopeA, agent, session, input)
		c := claim(t, s, scopeA, agent)
		_, err := s.FinishRun(ctx, scopeA, c.Run.ID, store.RunResult{Status: status, Output: output}, nil)
		must(t, err)
		return c.Run.ID
	}
	r1 := turn("a", "s", "q1", "a1", store.RunCompleted)
	r2 := turn("a", "s", "q2", "a2", store.RunCompleted)
	turn("a", "s", "q3", "boom", store.RunFailed)
	turn("a", "other", "o1", "oa1", store.RunCompleted)
	turn("b", "s", "b1", "ba1", store.RunCompleted)
	r4 := turn("a", "s", "q4", "a4", store.RunCompleted)
	r5 := turn("a", "s", "q5", "a5", store.RunCompleted)
	// A running turn is not history yet.
	enqueue(t, s, scopeA, "a", "s", "q6")
	claim(t, s, scopeA, "a")

	turns, err := s.SessionHistory(ctx, scopeA, "a", "s", 3)
	must(t, err)
	wantEqual(t, "last 3 turns", turns, []store.SessionTurn{
		{RunID: r2, Input: "q2", Output: "a2"}, {RunID: r4, Input: "q4", Output: "a4"}, {RunID: r5, Input: "q5", Output: "a5"},
	})
	turns, err = s.SessionHistory(ctx, scopeA, "a", "s", 100)
	must(t, err)
	if len(turns) != 4 || turns[0].RunID != r1 || turns[3].RunID != r5 {
		t.Fatalf("all turns = %+v", turns)
	}
	turns, err = s.SessionHistory(ctx, scopeA, "a", "nothing", 10)
	must(t, err)
	if len(turns) != 0 {
		t.Fatalf("empty session = %+v", turns)
	}
	turns, err = s.SessionHistory(ctx, scopeA, "a", "s", 0)
	must(t, err)
	if len(turns) != 0 {
		t.Fatalf("limit 0 = %+v", turns)
	}
}

// testRunSummaryQueue: FinishRun with Remember queues a completed agent run,
// in its scope, for its summary (not a failed run, not without Remember, not
// twice); PendingSummaries returns it with its input, output and end, from
// every scope; SummariesDone takes exactly the runs it is given off.
func testRunSummaryQueue(t *testing.T, s store.Store) {
	ctx := t.Context()
	pending := func() map[string]store.Run {
		t.Helper()
		runs, err := s.PendingSummaries(ctx, 100)
		must(t, err)
		out := map[string]store.Run{}
		for _, r := range runs {
			out[r.ID] = r
		}
		return out
	}
	if got := pending(); len(got) != 0 {
		t.Fatalf("fresh store: %d pending summaries", len(got))
	}
	finish := func(scope store.Scope, agent, input string, res store.RunResult) string {
		t.Helper()
		enqueue(t, s, scope, agent, "s", input)
		c := claim(t, s, scope, agent)
		_, err := s.FinishRun(ctx, scope, c.Run.ID, res, nil)
		must(t, err)
		return c.Run.ID
	}
	a1 := finish(scopeA, "a", "what is the door code", store.RunResult{Status: store.RunCompleted, Output: "5813", Remember: true})
	finish(scopeA, "a", "no summary wanted", store.RunResult{Status: store.RunCompleted, Output: "ok"})
	finish(scopeA, "a", "this one failed", store.RunResult{Status: store.RunFailed, Remember: true, Error: &store.RunError{Code: "x", Message: "y"}})
	b1 := finish(scopeB, "b", "other tenant", store.RunResult{Status: store.RunCompleted, Output: "theirs", Remember: true})
	a2 := finish(scopeA, "a", "second", store.RunResult{Status: store.RunCompleted, Output: "two", Remember: true})
	// Finishing a run that is no longer running queues nothing more.
	_, err := s.FinishRun(ctx, scopeA, a1, store.RunResult{Status: store.RunCompleted, Output: "again", Remember: true}, nil)
	wantErr(t, err, store.ErrConflict)

	got := pending()
	if len(got) != 3 {
		t.Fatalf("pending summaries = %+v, want runs %s %s %s", got, a1, a2, b1)
	}
	r := got[a1]
	if r.Scope != scopeA || r.AgentID != "a" || r.SessionKey != "s" || r.Input != "what is the door code" || r.Output != "5813" || r.Status != store.RunCompleted {
		t.Fatalf("pending %s = %+v", a1, r)
	}
	checkTimePtr(t, "EndedAt", r.EndedAt)
	if got[b1].Scope != scopeB || got[b1].Output != "theirs" || got[a2].Output != "two" {
		t.Fatalf("pending = %+v", got)
	}
	if runs, err := s.PendingSummaries(ctx, 2); err != nil || len(runs) != 2 || runs[0].ID != min(a1, a2, b1) || runs[1].ID >= max(a1, a2, b1) {
		t.Fatalf("PendingSummaries(2) = %+v, %v; want the two of %s, %s, %s with the lowest ids, in order", runs, err, a1, a2, b1)
	}
	// Done for a1 and for a run id of another scope that is not queued there.
	must(t, s.SummariesDone(ctx, []store.Run{{Scope: scopeA, ID: a1}, {Scope: scopeA, ID: b1}}))
	got = pending()
	if _, ok := got[a1]; ok || len(got) != 2 || got[b1].ID != b1 || got[a2].ID != a2 {
		t.Fatalf("after done: %+v", got)
	}
	must(t, s.SummariesDone(ctx, nil))
	must(t, s.SummariesDone(ctx, []store.Run{got[a2], got[b1]}))
	if got := pending(); len(got) != 0 {
		t.Fatalf("after all done: %+v", got)
	}
}

// With RequireAgent, a run for an agent the scope does not have is refused
// with nothing stored, and one for an agent it has is created.
func testRunCreateRequireAgent(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "here"}); err != nil {
		t.Fatal(err)
	}
	nr := store.NewRun{Scope: scopeB, RunID: "r1", MessageID: "m1", AgentID: "here", SessionKey: "s",
		Input: "hello", SenderType: store.SenderUser, SenderID: "alice", RequireAgent: true}
	_, _, err := s.CreateRun(ctx, nr) // another scope's agent of that id
	wantErr(t, err, store.ErrNotFound)
	if _, err := s.GetRun(ctx, scopeB, "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused run was stored: %v", err)
	}
	if msgs, _, err := s.ListMessages(ctx, scopeB, "here", "", store.Page{}); err != nil || len(msgs) != 0 {
		t.Fatalf("a refused run's message was stored: %+v, %v", msgs, err)
	}
	nr.Scope = scopeA
	r, m, err := s.CreateRun(ctx, nr)
	must(t, err)
	if r.ID != "r1" || r.Status != store.RunPending || m.Seq <= 0 || m.RunID != "r1" {
		t.Fatalf("CreateRun = %+v, %+v", r, m)
	}
	got, err := s.GetRun(ctx, scopeA, "r1")
	must(t, err)
	wantEqual(t, "GetRun", got, r)
}

// asRead returns events a write returned as a read gives them: without
// RunPrev, which only a write says.
func asRead(events []store.Event) []store.Event {
	out := slices.Clone(events)
	for i := range out {
		out[i].RunPrev = 0
	}
	return out
}

// runPrevs returns the events' RunPrev.
func runPrevs(events []store.Event) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.RunPrev
	}
	return out
}

// testRunRunPrev: the run-event writes of a turn say which event of the run
// each returned event follows (-1: the run's first), across writes and within
// a batch, past events of other runs stored in between; what is read back
// says nothing (0).
func testRunRunPrev(t *testing.T, s store.Store) {
	ctx := t.Context()
	r1, _ := createRun(t, s, scopeA, "a", "s", "one")
	c := claim(t, s, scopeA, "a")
	if c.Run.ID != r1.ID {
		t.Fatalf("claimed %s, want %s", c.Run.ID, r1.ID)
	}
	r2, _, err := s.CreateRun(ctx, store.NewRun{Scope: scopeA, RunID: newID("run"), MessageID: newID("msg"),
		AgentID: "b", Input: "two", Events: []store.Event{{Type: "run.queued"}}})
	must(t, err)

	first, err := s.SaveStep(ctx, scopeA, r1.ID, &store.Checkpoint{Step: 1, State: []byte(`{}`)},
		[]store.Event{{Type: "run.started"}, {Type: "llm.called"}})
	must(t, err)
	wantEqual(t, "first batch RunPrev", runPrevs(first), []int64{-1, first[0].ID})

	// Another run's events, through the other writes, between two of r1's.
	c2 := claim(t, s, scopeA, "b")
	if c2.Run.ID != r2.ID {
		t.Fatalf("claimed %s, want %s", c2.Run.ID, r2.ID)
	}
	other, err := s.SaveStep(ctx, scopeA, r2.ID, nil, []store.Event{{Type: "run.started"}})
	must(t, err)
	queued, _ := listEvents(t, s, scopeA, store.EventFilter{RunID: r2.ID, Types: []string{"run.queued"}})
	if len(queued) != 1 {
		t.Fatalf("run.queued of the second run = %+v", queued)
	}
	wantEqual(t, "other run's RunPrev", runPrevs(other), []int64{queued[0].ID})
	_, err = s.AppendEvents(ctx, []store.Event{{Scope: scopeA, RunID: r2.ID, Type: "note"},
		{Scope: scopeA, Type: "unrelated"}})
	must(t, err)

	// A batch may name another run: its events get 0 and do not break the chain.
	second, err := s.SaveStep(ctx, scopeA, r1.ID, nil, []store.Event{
		{Type: "tool.called"}, {RunID: r2.ID, Type: "foreign"}, {Type: "tool.result"}})
	must(t, err)
	wantEqual(t, "second batch RunPrev", runPrevs(second), []int64{first[1].ID, 0, second[0].ID})

	done, err := s.FinishRun(ctx, scopeA, r1.ID, store.RunResult{Status: store.RunCompleted, Output: "ok", Steps: 1},
		[]store.Event{{Type: "step.completed"}, {Type: "run.completed"}})
	must(t, err)
	wantEqual(t, "FinishRun RunPrev", runPrevs(done), []int64{second[2].ID, done[0].ID})

	// The chain is the run's stored order.
	listed, _ := listEvents(t, s, scopeA, store.EventFilter{RunID: r1.ID})
	wantEqual(t, "r1's events", eventIDs(listed),
		[]int64{first[0].ID, first[1].ID, second[0].ID, second[2].ID, done[0].ID, done[1].ID})
	for _, e := range listed {
		if e.RunPrev != 0 {
			t.Fatalf("listed event %d has RunPrev %d; reads say nothing", e.ID, e.RunPrev)
		}
	}

	// A run's first events, stored with it.
	r3, _, err := s.CreateRun(ctx, store.NewRun{Scope: scopeA, RunID: newID("run"), MessageID: newID("msg"),
		AgentID: "c", Input: "three", Events: []store.Event{{Type: "run.queued"}, {Type: "run.noted"}}})
	must(t, err)
	created, _ := listEvents(t, s, scopeA, store.EventFilter{RunID: r3.ID})
	if len(created) != 2 {
		t.Fatalf("r3's events = %+v", created)
	}
	c3 := claim(t, s, scopeA, "c")
	if c3.Run.ID != r3.ID {
		t.Fatalf("claimed %s, want %s", c3.Run.ID, r3.ID)
	}
	ended, err := s.FinishRun(ctx, scopeA, r3.ID, store.RunResult{Status: store.RunCancelled, Steps: 0},
		[]store.Event{{Type: "run.cancelled"}})
	must(t, err)
	wantEqual(t, "r3 FinishRun RunPrev", runPrevs(ended), []int64{created[1].ID})

	// Appended events say nothing, whatever the caller passed.
	appended, err := s.AppendEvents(ctx, []store.Event{{Scope: scopeA, RunID: r1.ID, Type: "late", RunPrev: 7}})
	must(t, err)
	wantEqual(t, "AppendEvents RunPrev", runPrevs(appended), []int64{0})
}

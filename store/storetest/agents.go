package storetest

import (
	"errors"
	"sync"
	"testing"

	"github.com/openintern/openintern/store"
)

var agentCases = []testCase{
	{"Agent/CreateGet", testAgentCreateGet},
	{"Agent/CreateConflict", testAgentCreateConflict},
	{"Agent/CreateInvalid", testAgentCreateInvalid},
	{"Agent/Ensure", testAgentEnsure},
	{"Agent/EnsureConcurrent", testAgentEnsureConcurrent},
	{"Agent/GetIsolation", testAgentGetIsolation},
	{"Agent/List", testAgentList},
	{"Agent/Unread", testAgentUnread},
	{"Agent/Update", testAgentUpdate},
	{"Agent/Delete", testAgentDelete},
	{"Agent/SetState", testAgentSetState},
	{"Agent/ListWithWork", testAgentListWithWork},
}

func testAgentCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "researcher", Name: "Researcher",
		SystemPrompt: "You research.", Model: "gpt-x", Tools: []string{"web.search", "fs.read"}})
	must(t, err)
	if a.State != store.AgentIdle {
		t.Fatalf("State = %q, want %q", a.State, store.AgentIdle)
	}
	if a.Scope != scopeA || a.ID != "researcher" || a.Name != "Researcher" || a.SystemPrompt != "You research." ||
		a.Model != "gpt-x" || a.Unread != 0 {
		t.Fatalf("CreateAgent returned %+v", a)
	}
	wantEqual(t, "Tools", a.Tools, []string{"web.search", "fs.read"})
	checkTime(t, "CreatedAt", a.CreatedAt)
	if !a.UpdatedAt.Equal(a.CreatedAt) {
		t.Fatalf("UpdatedAt %v != CreatedAt %v on a new agent", a.UpdatedAt, a.CreatedAt)
	}
	got, err := s.GetAgent(ctx, scopeA, "researcher")
	must(t, err)
	wantEqual(t, "GetAgent", got, a)

	// Defaults: no tools is an empty list, a given state is kept.
	b, err := s.CreateAgent(ctx, store.Agent{Scope: scopeP, ID: "bare", State: store.AgentPaused})
	must(t, err)
	if b.Tools == nil || len(b.Tools) != 0 || b.State != store.AgentPaused {
		t.Fatalf("CreateAgent(bare) = %+v, want empty non-nil tools and state paused", b)
	}
	got, err = s.GetAgent(ctx, scopeP, "bare")
	must(t, err)
	wantEqual(t, "GetAgent(bare)", got, b)
}

func testAgentCreateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	first, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "a1", Name: "first"})
	must(t, err)
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "a1", Name: "second"})
	wantErr(t, err, store.ErrConflict)
	got, err := s.GetAgent(ctx, scopeA, "a1")
	must(t, err)
	wantEqual(t, "agent after a conflicting create", got, first)
	// The same id in every other scope is another agent.
	for _, sc := range otherScopes {
		if _, err := s.CreateAgent(ctx, store.Agent{Scope: sc, ID: "a1"}); err != nil {
			t.Fatalf("CreateAgent a1 in %+v: %v", sc, err)
		}
	}
}

func testAgentCreateInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, a := range []store.Agent{
		{Scope: scopeA},
		{Scope: store.Scope{UserID: "u"}, ID: "x"},
		{Scope: store.Scope{OrgID: "o"}, ID: "x"},
	} {
		_, err := s.CreateAgent(ctx, a)
		if err == nil || errors.Is(err, store.ErrConflict) {
			t.Fatalf("CreateAgent(%+v) error = %v, want a validation error", a, err)
		}
	}
	_, total, err := s.ListAgents(ctx, scopeA, store.Page{})
	must(t, err)
	if total != 0 {
		t.Fatalf("invalid agents were stored: total %d", total)
	}
}

func testAgentEnsure(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Messages sent before the agent exists count as unread once it does.
	enqueue(t, s, scopeA, store.MainAgentID, "s", "early")
	a, err := s.EnsureAgent(ctx, store.Agent{Scope: scopeA, ID: store.MainAgentID, Name: "Main", Tools: []string{"t"}})
	must(t, err)
	if a.Name != "Main" || a.State != store.AgentIdle || a.Unread != 1 {
		t.Fatalf("EnsureAgent created %+v, want name Main, state idle, unread 1", a)
	}
	wantEqual(t, "Tools", a.Tools, []string{"t"})
	checkTime(t, "CreatedAt", a.CreatedAt)
	// A second call returns the stored agent and changes nothing.
	b, err := s.EnsureAgent(ctx, store.Agent{Scope: scopeA, ID: store.MainAgentID, Name: "Other"})
	must(t, err)
	wantEqual(t, "second EnsureAgent", b, a)
	got, err := s.GetAgent(ctx, scopeA, store.MainAgentID)
	must(t, err)
	wantEqual(t, "GetAgent", got, a)
	// Another scope gets its own.
	c, err := s.EnsureAgent(ctx, store.Agent{Scope: scopeB, ID: store.MainAgentID, Name: "B"})
	must(t, err)
	if c.Name != "B" || c.Scope != scopeB || c.Unread != 0 {
		t.Fatalf("EnsureAgent in scope B = %+v", c)
	}
	if _, err := s.EnsureAgent(ctx, store.Agent{Scope: scopeA}); err == nil {
		t.Fatal("EnsureAgent without an id succeeded")
	}
}

func testAgentEnsureConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 8
	var wg sync.WaitGroup
	got := make([]store.Agent, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[i], errs[i] = s.EnsureAgent(ctx, store.Agent{Scope: scopeA, ID: "shared", Name: "n"})
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("EnsureAgent #%d: %v", i, errs[i])
		}
		wantEqual(t, "concurrent EnsureAgent result", got[i], got[0])
	}
	_, total, err := s.ListAgents(ctx, scopeA, store.Page{})
	must(t, err)
	if total != 1 {
		t.Fatalf("ListAgents total = %d after concurrent EnsureAgent, want 1", total)
	}
}

func testAgentGetIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetAgent(ctx, scopeA, "missing")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "mine"})
	must(t, err)
	for _, sc := range otherScopes {
		_, err := s.GetAgent(ctx, sc, "mine")
		wantErr(t, err, store.ErrNotFound)
		agents, total, err := s.ListAgents(ctx, sc, store.Page{})
		must(t, err)
		if total != 0 || len(agents) != 0 {
			t.Fatalf("scope %+v lists %d agents (total %d) of scope A", sc, len(agents), total)
		}
	}
}

func testAgentList(t *testing.T, s store.Store) {
	ctx := t.Context()
	var want []store.Agent
	// Created in id order, so (created_at, agent_id) order is creation order.
	for _, id := range []string{"a0", "a1", "a2", "a3", "a4"} {
		a, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: id})
		must(t, err)
		want = append(want, a)
	}
	_, err := s.CreateAgent(ctx, store.Agent{Scope: scopeB, ID: "b0"})
	must(t, err)

	all, total, err := s.ListAgents(ctx, scopeA, store.Page{})
	must(t, err)
	if total != 5 {
		t.Fatalf("total = %d, want 5", total)
	}
	wantEqual(t, "ListAgents", all, want)

	page, total, err := s.ListAgents(ctx, scopeA, store.Page{Offset: 1, Limit: 2})
	must(t, err)
	if total != 5 {
		t.Fatalf("paged total = %d, want 5", total)
	}
	wantEqual(t, "ListAgents page", page, want[1:3])

	past, total, err := s.ListAgents(ctx, scopeA, store.Page{Offset: 10, Limit: 2})
	must(t, err)
	if total != 5 || len(past) != 0 {
		t.Fatalf("page past the end = %d agents, total %d; want 0, 5", len(past), total)
	}
}

func testAgentUnread(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "a"})
	must(t, err)
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "b"})
	must(t, err)
	enqueue(t, s, scopeA, "a", "s", "1", "2", "3")
	enqueue(t, s, scopeA, "b", "s", "1")
	enqueue(t, s, scopeB, "a", "s", "other scope") // not A's
	createRun(t, s, scopeA, "a", "s", "a run")     // its message is unread too

	unread := func(want map[string]int) {
		t.Helper()
		agents, _, err := s.ListAgents(ctx, scopeA, store.Page{})
		must(t, err)
		for _, a := range agents {
			if a.Unread != want[a.ID] {
				t.Fatalf("ListAgents: %s unread = %d, want %d", a.ID, a.Unread, want[a.ID])
			}
			g, err := s.GetAgent(ctx, scopeA, a.ID)
			must(t, err)
			if g.Unread != want[a.ID] {
				t.Fatalf("GetAgent: %s unread = %d, want %d", a.ID, g.Unread, want[a.ID])
			}
		}
	}
	unread(map[string]int{"a": 4, "b": 1})
	c := claim(t, s, scopeA, "a") // the three plain messages
	unread(map[string]int{"a": 4, "b": 1})
	finish(t, s, scopeA, c.Run.ID, "done")
	unread(map[string]int{"a": 1, "b": 1})
}

func testAgentUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	orig, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "a", Name: "n", SystemPrompt: "p", Model: "m",
		Tools: []string{"x"}})
	must(t, err)
	name := "renamed"
	got, err := s.UpdateAgent(ctx, scopeA, "a", store.AgentPatch{Name: &name})
	must(t, err)
	want := orig
	want.Name = name
	want.UpdatedAt = got.UpdatedAt
	wantEqual(t, "after renaming", got, want)
	if got.UpdatedAt.Before(orig.UpdatedAt) {
		t.Fatalf("UpdatedAt went back: %v < %v", got.UpdatedAt, orig.UpdatedAt)
	}
	checkTime(t, "UpdatedAt", got.UpdatedAt)

	prompt, model, tools := "new prompt", "new model", []string{"y", "z"}
	got, err = s.UpdateAgent(ctx, scopeA, "a", store.AgentPatch{SystemPrompt: &prompt, Model: &model, Tools: &tools})
	must(t, err)
	if got.Name != name || got.SystemPrompt != prompt || got.Model != model {
		t.Fatalf("after patch = %+v", got)
	}
	wantEqual(t, "Tools", got.Tools, tools)
	read, err := s.GetAgent(ctx, scopeA, "a")
	must(t, err)
	wantEqual(t, "GetAgent after update", read, got)

	empty := []string{}
	got, err = s.UpdateAgent(ctx, scopeA, "a", store.AgentPatch{Tools: &empty})
	must(t, err)
	if got.Tools == nil || len(got.Tools) != 0 {
		t.Fatalf("Tools after clearing = %#v", got.Tools)
	}

	_, err = s.UpdateAgent(ctx, scopeA, "missing", store.AgentPatch{Name: &name})
	wantErr(t, err, store.ErrNotFound)
	for _, sc := range otherScopes {
		_, err = s.UpdateAgent(ctx, sc, "a", store.AgentPatch{Name: &name})
		wantErr(t, err, store.ErrNotFound)
	}
}

func testAgentDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "a"})
	must(t, err)
	enqueue(t, s, scopeA, "a", "s", "hello")
	_, err = s.AppendEvents(ctx, []store.Event{{Scope: scopeA, AgentID: "a", Type: "agent.note"}})
	must(t, err)
	for _, sc := range otherScopes {
		wantErr(t, s.DeleteAgent(ctx, sc, "a", false), store.ErrNotFound)
	}
	must(t, s.DeleteAgent(ctx, scopeA, "a", false))
	_, err = s.GetAgent(ctx, scopeA, "a")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteAgent(ctx, scopeA, "a", false), store.ErrNotFound)
	// The trace stays.
	msgs, total, err := s.ListMessages(ctx, scopeA, "a", "", store.Page{})
	must(t, err)
	if total != 1 || len(msgs) != 1 {
		t.Fatalf("messages after delete: %d (total %d), want 1", len(msgs), total)
	}
	if _, total := listEvents(t, s, scopeA, store.EventFilter{AgentID: "a"}); total != 1 {
		t.Fatalf("events after delete: total %d, want 1", total)
	}
	// The id can be used again.
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "a"})
	must(t, err)
}

func testAgentSetState(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "a"})
	must(t, err)
	ev, err := s.SetAgentState(ctx, scopeA, "a", store.AgentRunning, store.Event{
		Scope: scopeB, // the store fills the scope of the call
		Type:  "agent.state_changed", Payload: payload(map[string]string{"from": "idle", "to": "running"}),
	})
	must(t, err)
	if ev.ID <= 0 || ev.Scope != scopeA || ev.AgentID != "a" || ev.Type != "agent.state_changed" {
		t.Fatalf("SetAgentState event = %+v", ev)
	}
	checkTime(t, "event TS", ev.TS)
	got, err := s.GetAgent(ctx, scopeA, "a")
	must(t, err)
	if got.State != store.AgentRunning {
		t.Fatalf("State = %q, want running", got.State)
	}
	if got.UpdatedAt.Before(a.UpdatedAt) {
		t.Fatalf("UpdatedAt went back")
	}
	events, total := listEvents(t, s, scopeA, store.EventFilter{AgentID: "a"})
	if total != 1 {
		t.Fatalf("events = %d, want 1", total)
	}
	wantEqual(t, "stored event", events[0], ev)

	// A missing agent, or one of another scope: not found, and no event.
	for _, sc := range append([]store.Scope{scopeA}, otherScopes...) {
		id := "a"
		if sc == scopeA {
			id = "missing"
		}
		_, err := s.SetAgentState(ctx, sc, id, store.AgentPaused, store.Event{Type: "agent.state_changed"})
		wantErr(t, err, store.ErrNotFound)
		want := 0
		if sc == scopeA {
			want = 1
		}
		if _, total := listEvents(t, s, sc, store.EventFilter{}); total != want {
			t.Fatalf("scope %+v has %d events after a failed SetAgentState, want %d", sc, total, want)
		}
	}
	got, err = s.GetAgent(ctx, scopeA, "a")
	must(t, err)
	if got.State != store.AgentRunning {
		t.Fatalf("State = %q after failed calls, want running", got.State)
	}
}

func testAgentListWithWork(t *testing.T, s store.Store) {
	ctx := t.Context()
	enqueue(t, s, scopeA, "inbox", "s", "hi")
	enqueue(t, s, scopeB, "inbox", "s", "hi")
	createRun(t, s, scopeP, "pending", "s", "do it")
	enqueue(t, s, scopeA, "running", "s", "work")
	c := claim(t, s, scopeA, "running")
	enqueue(t, s, scopeA, "done", "s", "work")
	d := claim(t, s, scopeA, "done")
	finish(t, s, scopeA, d.Run.ID, "ok")
	_, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "idle"})
	must(t, err)

	for agent, want := range map[string]bool{"inbox": true, "running": true, "done": false, "idle": false, "nobody": false} {
		has, err := s.HasWork(ctx, scopeA, agent)
		must(t, err)
		if has != want {
			t.Fatalf("HasWork(%s) = %v, want %v", agent, has, want)
		}
	}
	if has, err := s.HasWork(ctx, scopeB, "running"); err != nil || has {
		t.Fatalf("HasWork of another scope's agent = %v, %v", has, err)
	}
	if has, err := s.HasWork(ctx, scopeP, "pending"); err != nil || !has {
		t.Fatalf("HasWork with a pending run = %v, %v", has, err)
	}

	refs, err := s.ListAgentsWithWork(ctx)
	must(t, err)
	want := map[store.AgentRef]bool{
		{Scope: scopeA, AgentID: "inbox"}:   true,
		{Scope: scopeB, AgentID: "inbox"}:   true,
		{Scope: scopeP, AgentID: "pending"}: true,
		{Scope: scopeA, AgentID: "running"}: true,
	}
	got := map[store.AgentRef]bool{}
	for _, r := range refs {
		if got[r] {
			t.Fatalf("ListAgentsWithWork lists %+v twice", r)
		}
		got[r] = true
	}
	wantEqual(t, "ListAgentsWithWork", got, want)

	finish(t, s, scopeA, c.Run.ID, "ok")
	refs, err = s.ListAgentsWithWork(ctx)
	must(t, err)
	if len(refs) != 3 {
		t.Fatalf("after finishing: %+v, want 3 agents", refs)
	}
	for _, r := range refs {
		if r.AgentID == "running" {
			t.Fatalf("finished agent still listed: %+v", refs)
		}
	}
}

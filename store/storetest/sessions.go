package storetest

import (
	"encoding/json"
	"testing"

	"github.com/openintern/openintern/store"
)

var sessionCases = []testCase{
	{"Session/ListAndGet", testSessions},
}

// testSessions: a session is the runs of a session key in a scope, counted by
// status, with the agents that ran them; sessions list the most recently
// active (a run created, started or ended) first.
func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	sessions, total, err := s.ListSessions(ctx, scopeA, store.Page{})
	must(t, err)
	if len(sessions) != 0 || total != 0 {
		t.Fatalf("ListSessions on an empty store = %+v, total %d", sessions, total)
	}
	_, err = s.GetSession(ctx, scopeA, "s1")
	wantErr(t, err, store.ErrNotFound)

	first, _ := createRun(t, s, scopeA, "a", "s1", "one")
	tick(t, s)
	createRun(t, s, scopeA, "b", "s2", "two")
	tick(t, s)
	createRun(t, s, scopeA, "b", "s1", "three") // s1 now the most recent
	list := func(page store.Page) ([]string, int) {
		t.Helper()
		ss, total, err := s.ListSessions(ctx, scopeA, page)
		must(t, err)
		keys := make([]string, len(ss))
		for i, x := range ss {
			keys[i] = x.Key
		}
		return keys, total
	}
	keys, total := list(store.Page{})
	wantEqual(t, "sessions", keys, []string{"s1", "s2"})
	if total != 2 {
		t.Fatalf("total = %d, want 2", total)
	}

	// Starting a run is activity: a's claim of s1's first run, then b's
	// run of s2 started and completed, makes s2 the most recent.
	c := claim(t, s, scopeA, "a")
	if c.Run.ID != first.ID {
		t.Fatalf("claimed %s, want %s", c.Run.ID, first.ID)
	}
	finish(t, s, scopeA, c.Run.ID, "done")
	tick(t, s)
	c = claim(t, s, scopeA, "b")
	if c.Run.SessionKey != "s2" {
		t.Fatalf("b claimed a run of %q, want s2", c.Run.SessionKey)
	}
	finish(t, s, scopeA, c.Run.ID, "done")
	run, err := s.GetRun(ctx, scopeA, c.Run.ID)
	must(t, err)
	keys, _ = list(store.Page{})
	wantEqual(t, "sessions after s2's run ended", keys, []string{"s2", "s1"})
	keys, total = list(store.Page{Offset: 1, Limit: 1})
	wantEqual(t, "second page of one", keys, []string{"s1"})
	if total != 2 {
		t.Fatalf("total of a page = %d, want 2", total)
	}
	keys, _ = list(store.Page{Offset: 2})
	wantEqual(t, "a page past the end", keys, []string{})

	s1, err := s.GetSession(ctx, scopeA, "s1")
	must(t, err)
	if s1.Key != "s1" || s1.Runs != 2 || len(s1.RunsByStatus) != 2 || s1.RunsByStatus[store.RunCompleted] != 1 ||
		s1.RunsByStatus[store.RunPending] != 1 {
		t.Fatalf("GetSession(s1) = %+v", s1)
	}
	wantEqual(t, "s1's agents", s1.AgentIDs, []string{"a", "b"})
	if !s1.CreatedAt.Equal(first.CreatedAt) || !s1.LastActivityAt.After(s1.CreatedAt) {
		t.Fatalf("s1 times: created %v (first run %v), last activity %v", s1.CreatedAt, first.CreatedAt, s1.LastActivityAt)
	}
	checkTime(t, "CreatedAt", s1.CreatedAt)
	checkTime(t, "LastActivityAt", s1.LastActivityAt)
	s2, err := s.GetSession(ctx, scopeA, "s2")
	must(t, err)
	if s2.Runs != 1 || s2.RunsByStatus[store.RunCompleted] != 1 || !s2.LastActivityAt.Equal(*run.EndedAt) {
		t.Fatalf("GetSession(s2) = %+v, want its one run completed and last active at its end %v", s2, run.EndedAt)
	}
	wantEqual(t, "s2's agents", s2.AgentIDs, []string{"b"})
	// The list says what GetSession says.
	ss, _, err := s.ListSessions(ctx, scopeA, store.Page{})
	must(t, err)
	wantEqual(t, "listed sessions", ss, []store.Session{s2, s1})

	// A group run has no agent.
	createGroup(t, s, scopeA, "g")
	_, _, err = s.CreateGroupRun(ctx, store.Run{Scope: scopeA, ID: newID("run"), GroupID: "g", SessionKey: "s3", Input: "team"},
		store.Checkpoint{State: json.RawMessage(`{}`)}, nil)
	must(t, err)
	s3, err := s.GetSession(ctx, scopeA, "s3")
	must(t, err)
	if s3.Runs != 1 || s3.RunsByStatus[store.RunRunning] != 1 || s3.AgentIDs == nil || len(s3.AgentIDs) != 0 {
		t.Fatalf("GetSession(s3) = %+v", s3)
	}

	// Other scopes see none of it.
	for _, sc := range otherScopes {
		ss, total, err := s.ListSessions(ctx, sc, store.Page{})
		must(t, err)
		if len(ss) != 0 || total != 0 {
			t.Fatalf("ListSessions(%+v) = %+v, total %d", sc, ss, total)
		}
		_, err = s.GetSession(ctx, sc, "s1")
		wantErr(t, err, store.ErrNotFound)
	}
}

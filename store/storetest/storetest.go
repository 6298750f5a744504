package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

// Scopes of the suite. The others differ from scopeA in one part each, so
// isolation is checked for every column of the scope.
var (
	scopeA = store.Scope{OrgID: "org-1", UserID: "user-1"}
	scopeB = store.Scope{OrgID: "org-1", UserID: "user-2"}                      // another user of the org
	scopeP = store.Scope{OrgID: "org-1", UserID: "user-1", ProjectID: "proj-1"} // a project of A's user
	scopeO = store.Scope{OrgID: "org-2", UserID: "user-1"}                      // another org
)

var otherScopes = []store.Scope{scopeB, scopeP, scopeO}

type testCase struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// Run runs the suite. newStore must return a new, empty store of its own for
// the test it is given (and close it in t.Cleanup); subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	var cases []testCase
	cases = append(cases, basicCases...)
	cases = append(cases, agentCases...)
	cases = append(cases, messageCases...)
	cases = append(cases, runCases...)
	cases = append(cases, claimCases...)
	cases = append(cases, eventCases...)
	cases = append(cases, runStreamCases...)
	cases = append(cases, teamCases...)
	cases = append(cases, sessionCases...)
	cases = append(cases, idempotencyCases...)
	cases = append(cases, tokenCases...)
	cases = append(cases, metricsCases...)
	cases = append(cases, auditCases...)
	cases = append(cases, summaryCases...)
	cases = append(cases, quotaCases...)
	cases = append(cases, mcpCases...)
	cases = append(cases, policyCases...)
	cases = append(cases, skillCases...)
	cases = append(cases, mcpServerCases...)
	cases = append(cases, jobCases...)
	cases = append(cases, approvalCases...)
	cases = append(cases, feishuCases...)
	cases = append(cases, leaseCases...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			cs, ok := s.(clockSetter)
			if !ok {
				t.Fatalf("%T has no SetClock: the suite moves the store's clock instead of sleeping", s)
			}
			c := &testClock{}
			cs.SetClock(c.now)
			tc.fn(t, clockedStore{s, c})
		})
	}
}

// clockSetter is a store whose clock the suite sets (both stores have one).
type clockSetter interface{ SetClock(store.Clock) }

// testClock is the wall clock moved ahead by tick, so that rows made on
// either side of a tick get distinct, ordered times without a sleep.
type testClock struct{ ahead atomic.Int64 }

func (c *testClock) now() time.Time { return time.Now().Add(time.Duration(c.ahead.Load())) }

// clockedStore is the store a case gets: the store with its clock.
type clockedStore struct {
	store.Store
	clock *testClock
}

// tick moves the case's store clock a millisecond ahead, so that "oldest
// first" or "most recent first" cannot pass by id order.
func tick(t *testing.T, s store.Store) {
	t.Helper()
	cs, ok := s.(clockedStore)
	if !ok {
		t.Fatalf("tick: %T is not the store the suite gave the case", s)
	}
	cs.clock.ahead.Add(int64(time.Millisecond))
}

var basicCases = []testCase{
	{"Ping", func(t *testing.T, s store.Store) {
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}},
	{"Dialect", func(t *testing.T, s store.Store) {
		if d := s.Dialect(); d != "sqlite" && d != "postgres" {
			t.Fatalf("Dialect() = %q, want sqlite or postgres", d)
		}
	}},
	{"EmptyStore", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		agents, total, err := s.ListAgents(ctx, scopeA, store.Page{})
		must(t, err)
		if len(agents) != 0 || total != 0 {
			t.Fatalf("ListAgents on an empty store = %d agents, total %d", len(agents), total)
		}
		refs, err := s.ListAgentsWithWork(ctx)
		must(t, err)
		if len(refs) != 0 {
			t.Fatalf("ListAgentsWithWork on an empty store = %v", refs)
		}
		_, err = s.ClaimNextRun(ctx, scopeA, "nobody", newID("run"))
		wantErr(t, err, store.ErrNoWork)
	}},
}

var idCounter atomic.Int64

// newID returns an id no other call returns.
func newID(prefix string) string {
	return fmt.Sprintf("%s-%04d", prefix, idCounter.Add(1))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// wantErr fails unless err wraps target.
func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

// wantEqual fails unless got and want are deeply equal: times must be equal
// to the microsecond and in the same location to pass.
func wantEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// checkTime fails unless ts is a store time: UTC, whole microseconds, and
// within the last minute.
func checkTime(t *testing.T, what string, ts time.Time) {
	t.Helper()
	if ts.Location() != time.UTC {
		t.Fatalf("%s = %v: location %v, want UTC", what, ts, ts.Location())
	}
	if ts.Nanosecond()%1000 != 0 {
		t.Fatalf("%s = %v: not whole microseconds", what, ts)
	}
	if d := time.Since(ts); d < -time.Second || d > time.Minute {
		t.Fatalf("%s = %v: %v away from now", what, ts, d)
	}
}

func checkTimePtr(t *testing.T, what string, ts *time.Time) {
	t.Helper()
	if ts == nil {
		t.Fatalf("%s is nil", what)
	}
	checkTime(t, what, *ts)
}

// enqueue stores one plain message per content for the agent in session and
// returns them.
func enqueue(t *testing.T, s store.Store, scope store.Scope, agentID, session string, contents ...string) []store.Message {
	t.Helper()
	batch := make([]store.NewMessage, len(contents))
	for i, c := range contents {
		batch[i] = store.NewMessage{Scope: scope, ID: newID("msg"), AgentID: agentID, SessionKey: session,
			SenderType: store.SenderUser, SenderID: "u", Content: c}
	}
	msgs, err := s.EnqueueMessages(t.Context(), batch)
	must(t, err)
	return msgs
}

// createRun stores a pending run with input for the agent in session.
func createRun(t *testing.T, s store.Store, scope store.Scope, agentID, session, input string) (store.Run, store.Message) {
	t.Helper()
	r, m, err := s.CreateRun(t.Context(), store.NewRun{Scope: scope, RunID: newID("run"), MessageID: newID("msg"),
		AgentID: agentID, SessionKey: session, Input: input, SenderType: store.SenderUser, SenderID: "u"})
	must(t, err)
	return r, m
}

// claim claims the agent's next run.
func claim(t *testing.T, s store.Store, scope store.Scope, agentID string) store.Claim {
	t.Helper()
	c, err := s.ClaimNextRun(t.Context(), scope, agentID, newID("run"))
	must(t, err)
	return c
}

// finish completes a running run with output.
func finish(t *testing.T, s store.Store, scope store.Scope, runID, output string) {
	t.Helper()
	_, err := s.FinishRun(t.Context(), scope, runID, store.RunResult{Status: store.RunCompleted, Output: output, Steps: 1}, nil)
	must(t, err)
}

// seqs returns the seqs of msgs.
func seqs(msgs []store.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func contents(msgs []store.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Content
	}
	return out
}

func eventIDs(events []store.Event) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// listEvents returns all events of the filter (Limit 1000) and the total.
func listEvents(t *testing.T, s store.Store, scope store.Scope, f store.EventFilter) ([]store.Event, int) {
	t.Helper()
	if f.Limit == 0 {
		f.Limit = 1000
	}
	events, total, err := s.ListEvents(t.Context(), scope, f)
	must(t, err)
	return events, total
}

func payload(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

package events_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

const waitTimeout = 10 * time.Second

var (
	scopeA = store.Scope{OrgID: "org-a", UserID: "user-1", ProjectID: "proj-1"}
	scopeB = store.Scope{OrgID: "org-a", UserID: "user-1"} // differs from scopeA by project only
)

func event(scope store.Scope, id int64, typ string) store.Event {
	return store.Event{
		Scope:   scope,
		ID:      id,
		RunID:   "run-1",
		AgentID: "main",
		StepID:  fmt.Sprintf("step-%d", id),
		Type:    typ,
		TS:      time.Date(2026, 1, 2, 3, 4, 5, int(id)*1000, time.UTC),
		Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, id)),
	}
}

// recv returns the next event of ch, failing the test when ch is closed or
// nothing arrives in time.
func recv(t *testing.T, ch <-chan store.Event) store.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("channel closed, want an event")
		}
		return ev
	case <-time.After(waitTimeout):
		t.Fatalf("no event within %s", waitTimeout)
	}
	return store.Event{}
}

// expectClosed drains at most max events from ch and fails unless it is
// closed afterwards; it returns the drained events.
func expectClosed(t *testing.T, ch <-chan store.Event, max int) []store.Event {
	t.Helper()
	var got []store.Event
	deadline := time.After(waitTimeout)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, ev)
			if len(got) > max {
				t.Fatalf("got more than %d events before close", max)
			}
		case <-deadline:
			t.Fatalf("channel not closed within %s (got %d events)", waitTimeout, len(got))
		}
	}
}

// expectNothing fails when ch yields anything (an event or its close) within d.
func expectNothing(t *testing.T, ch <-chan store.Event, d time.Duration) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("channel closed, want it open and empty")
		}
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(d):
	}
}

func sameEvent(t *testing.T, got, want store.Event) {
	t.Helper()
	if got.Scope != want.Scope || got.ID != want.ID || got.RunID != want.RunID || got.AgentID != want.AgentID ||
		got.GroupID != want.GroupID || got.StepID != want.StepID || got.Type != want.Type || !got.TS.Equal(want.TS) ||
		string(got.Payload) != string(want.Payload) || got.RunPrev != want.RunPrev {
		t.Fatalf("event mismatch:\n got %+v\nwant %+v", got, want)
	}
}

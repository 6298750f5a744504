package events_test

import (
	"errors"
	"testing"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/store"
)

// A Recorder publishes what the store stored, and nothing when it failed.
func TestRecorderPublishesOnlyStoredEvents(t *testing.T) {
	bus := events.NewMemoryBus(16)
	defer bus.Close()
	live := bus.Subscribe(t.Context(), scopeA, nil)
	rec := events.Recorder{Bus: bus}

	refused := errors.New("store refused")
	if _, err := rec.Stored([]store.Event{event(scopeA, 1, "step.started")}, refused); !errors.Is(err, refused) {
		t.Fatalf("err = %v, want the store's", err)
	}
	if _, err := rec.StoredOne(event(scopeA, 2, "agent.state_changed"), refused); !errors.Is(err, refused) {
		t.Fatalf("err = %v, want the store's", err)
	}
	stored := []store.Event{event(scopeA, 3, "step.started"), event(scopeA, 4, "step.completed")}
	if got, err := rec.Stored(stored, nil); err != nil || len(got) != 2 {
		t.Fatalf("Stored = %v, %v", got, err)
	}
	if _, err := rec.StoredOne(event(scopeA, 5, "agent.state_changed"), nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int64{3, 4, 5} {
		if got := recv(t, live); got.ID != want {
			t.Fatalf("published id %d, want %d (a failed store call published?)", got.ID, want)
		}
	}
}

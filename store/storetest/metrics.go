package storetest

import (
	"testing"

	"github.com/openintern/openintern/store"
)

var metricsCases = []testCase{
	{"CountUnreadMessages", testCountUnreadMessages},
}

// testCountUnreadMessages: the count is daemon-wide (every scope), takes
// pending runs' messages in, and drops a run's messages once the run ends
// (a claimed run's messages stay unread while it works).
func testCountUnreadMessages(t *testing.T, s store.Store) {
	ctx := t.Context()
	count := func(want int64) {
		t.Helper()
		n, err := s.CountUnreadMessages(ctx)
		must(t, err)
		if n != want {
			t.Fatalf("CountUnreadMessages = %d, want %d", n, want)
		}
	}
	count(0)
	enqueue(t, s, scopeA, "a", "s", "one", "two")
	enqueue(t, s, scopeB, "a", "s", "three")
	enqueue(t, s, scopeO, "b", "s", "four")
	createRun(t, s, scopeP, "c", "s", "five")
	count(5)
	c := claim(t, s, scopeA, "a") // both of a's plain messages of session s make one run
	count(5)
	finish(t, s, scopeA, c.Run.ID, "ok")
	count(3)
	c = claim(t, s, scopeP, "c")
	count(3)
	finish(t, s, scopeP, c.Run.ID, "ok")
	count(2)
}

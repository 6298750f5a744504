package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
)

// privateRedisClient is a client of a redis-server of the test's own, which
// the test may stop (the shared one serves other tests).
func privateRedisClient(t *testing.T) (*testenv.RedisServer, *redis.Client) {
	t.Helper()
	srv := testenv.StartRedis(t)
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	return srv, client
}

// outageBudget is how long a burst of publishes may take in all while Redis
// is down: a publish is best effort and must not hold up the turn that made
// the event (before, each waited for the client's redials and retries, about
// two seconds with Redis refusing connections).
const outageBudget = time.Second

// TestRedisBusPublishDuringOutageIsBounded stops Redis under two buses: the
// publishing daemon's own subscribers still get every event at once, its
// publishes return within outageBudget in all, and once Redis is back the
// other daemon receives again without either bus being restarted.
func TestRedisBusPublishDuringOutageIsBounded(t *testing.T) {
	srv, client := privateRedisClient(t)
	a := newRedisBus(t, client, "oi:")
	b := newRedisBus(t, client, "oi:")
	ctx := t.Context()
	localA := a.Subscribe(ctx, scopeA, nil)

	srv.Stop()
	start := time.Now()
	const n = 20
	for i := int64(1); i <= n; i++ {
		a.Publish(ctx, event(scopeA, i, "step.completed"))
	}
	took := time.Since(start)
	t.Logf("%d publishes with Redis down took %s", n, took)
	if took > outageBudget {
		t.Errorf("%d publishes with Redis down took %s, want at most %s", n, took, outageBudget)
	}
	for i := int64(1); i <= n; i++ {
		if ev := recv(t, localA); ev.ID != i {
			t.Fatalf("local subscriber got event %d, want %d", ev.ID, i)
		}
	}

	srv.Start()
	// b resubscribes with backoff; publish until it receives.
	remoteB := b.Subscribe(ctx, scopeA, nil)
	deadline := time.Now().Add(waitTimeout)
	for id := int64(100); ; id++ {
		a.Publish(ctx, event(scopeA, id, "step.completed"))
		select {
		case ev, ok := <-remoteB:
			if ok && ev.ID >= 100 {
				return
			}
			if !ok { // dropped by b's resync: subscribe again
				remoteB = b.Subscribe(ctx, scopeA, nil)
			}
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event reached the other bus within %s of Redis coming back", waitTimeout)
		}
	}
}

// TestRedisWakerWakeDuringOutageIsBounded: with Redis down a Wake still
// calls this daemon's onWake and returns (with the publish's error) within
// outageBudget for a burst, instead of blocking its caller.
func TestRedisWakerWakeDuringOutageIsBounded(t *testing.T) {
	srv, client := privateRedisClient(t)
	rec := newWakeRecorder()
	w := newRedisWaker(t, client, "oi:", "node-a", rec)

	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	start := time.Now()
	const n = 20
	failed := 0
	for range n {
		if err := w.Wake(ctx, store.Scope{OrgID: "o", UserID: "u"}, "agent-1"); err != nil {
			failed++
		}
	}
	took := time.Since(start)
	t.Logf("%d wakes with Redis down took %s (%d reported the publish failure)", n, took, failed)
	if took > outageBudget {
		t.Errorf("%d wakes with Redis down took %s, want at most %s", n, took, outageBudget)
	}
	if failed != n {
		t.Errorf("%d of %d wakes reported the failed publish", failed, n)
	}
	if calls, _ := rec.snapshot(); len(calls) != n {
		t.Errorf("onWake ran %d times, want %d (the local wake does not depend on Redis)", len(calls), n)
	}
}

// TestRedisBusHealth: a RedisBus reports itself unhealthy from the loss of
// its subscription until it has subscribed again, and after Close; a
// MemoryBus always delivers everything.
func TestRedisBusHealth(t *testing.T) {
	srv, client := privateRedisClient(t)
	b := newRedisBus(t, client, "oi:")
	if !b.Healthy() || !events.LiveHealthy(b) {
		t.Fatal("a new bus is not healthy")
	}
	srv.Stop()
	waitUntil(t, "the bus reports Redis lost", func() bool { return !events.LiveHealthy(b) })
	srv.Start()
	waitUntil(t, "the bus reports Redis back", func() bool { return events.LiveHealthy(b) })
	_ = b.Close()
	if b.Healthy() {
		t.Fatal("a closed bus reports itself healthy")
	}
	if !events.LiveHealthy(events.NewMemoryBus(0)) {
		t.Fatal("MemoryBus is not healthy")
	}
}

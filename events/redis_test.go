package events_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func newRedisBus(t *testing.T, client *redis.Client, prefix string, opts ...events.RedisOption) *events.RedisBus {
	t.Helper()
	bus, err := events.NewRedisBus(t.Context(), client, prefix, testLogger(t), opts...)
	if err != nil {
		t.Fatalf("NewRedisBus: %v", err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	return bus
}

func TestRedisBusCrossDeliveryInOrder(t *testing.T) {
	client := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t)
	a := newRedisBus(t, client, prefix)
	b := newRedisBus(t, client, prefix)
	ctx := t.Context()

	subA := a.Subscribe(ctx, scopeA, nil)
	subB := b.Subscribe(ctx, scopeA, nil)

	var want []store.Event
	for i := int64(1); i <= 50; i++ {
		ev := event(scopeA, i, "step.completed")
		ev.RunPrev = i - 1 // travels beside the event: 0 (unknown) for the first
		if i == 2 {
			ev.RunPrev = -1
		}
		want = append(want, ev)
		a.Publish(ctx, ev)
	}
	batch := []store.Event{event(scopeA, 51, "llm.token"), event(scopeA, 52, "llm.token"), event(scopeA, 53, "run.completed")}
	batch[0].ID = 0         // live-only event
	batch[1].Payload = nil  // travels as null, comes back nil
	batch[2].GroupID = "g1" // a field that is often empty
	want = append(want, batch...)
	a.Publish(ctx, batch...)

	for _, w := range want {
		sameEvent(t, recv(t, subB), w)
	}
	// A's subscriber gets its own events once, from the local fan-out.
	for _, w := range want {
		sameEvent(t, recv(t, subA), w)
	}
	// Barrier: B publishes after it received everything, so by the time A
	// receives the barrier through Redis its subscriber goroutine has handled
	// (and skipped) the echo of A's own messages.
	barrier := event(scopeA, 1000, "barrier")
	b.Publish(ctx, barrier)
	sameEvent(t, recv(t, subA), barrier)
	sameEvent(t, recv(t, subB), barrier)
	expectNothing(t, subA, 100*time.Millisecond)
	expectNothing(t, subB, 100*time.Millisecond)
}

func TestRedisBusScopeFilter(t *testing.T) {
	client := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t)
	a := newRedisBus(t, client, prefix)
	b := newRedisBus(t, client, prefix)
	ctx := t.Context()

	subA := b.Subscribe(ctx, scopeA, nil)
	subB := b.Subscribe(ctx, scopeB, nil)
	otherOrg := store.Scope{OrgID: "org-b", UserID: "user-1", ProjectID: "proj-1"}
	subOther := b.Subscribe(ctx, otherOrg, nil)
	matched := b.Subscribe(ctx, scopeA, func(ev store.Event) bool { return ev.Type == "wanted" })

	// Another scope's events go first: were they delivered to subA they would
	// arrive before the marker.
	a.Publish(ctx, event(scopeB, 1, "x"), event(otherOrg, 2, "x"))
	a.Publish(ctx, event(scopeA, 3, "unwanted"))
	a.Publish(ctx, event(scopeA, 4, "wanted"))

	if ev := recv(t, subA); ev.ID != 3 || ev.Scope != scopeA {
		t.Fatalf("scopeA subscriber got %+v first, want id 3", ev)
	}
	if ev := recv(t, subA); ev.ID != 4 {
		t.Fatalf("scopeA subscriber got %+v, want id 4", ev)
	}
	if ev := recv(t, subB); ev.ID != 1 || ev.Scope != scopeB {
		t.Fatalf("scopeB subscriber got %+v, want id 1", ev)
	}
	if ev := recv(t, subOther); ev.ID != 2 || ev.Scope != otherOrg {
		t.Fatalf("org-b subscriber got %+v, want id 2", ev)
	}
	if ev := recv(t, matched); ev.ID != 4 {
		t.Fatalf("matching subscriber got %+v, want id 4", ev)
	}
	for _, ch := range []<-chan store.Event{subA, subB, subOther, matched} {
		expectNothing(t, ch, 50*time.Millisecond)
	}
}

func TestRedisBusPrefixIsolation(t *testing.T) {
	client := testenv.RedisClient(t)
	a := newRedisBus(t, client, testenv.RedisPrefix(t))
	c := newRedisBus(t, client, testenv.RedisPrefix(t))
	sub := c.Subscribe(t.Context(), scopeA, nil)
	a.Publish(t.Context(), event(scopeA, 1, "x"))
	expectNothing(t, sub, 300*time.Millisecond)
}

func TestRedisBusSlowSubscriberDropped(t *testing.T) {
	const size = 8
	client := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t)
	a := newRedisBus(t, client, prefix, events.WithBufferSize(size))
	b := newRedisBus(t, client, prefix, events.WithBufferSize(size))
	ctx := t.Context()

	slowLocal := a.Subscribe(ctx, scopeA, nil)
	slowRemote := b.Subscribe(ctx, scopeA, nil)
	fast := b.Subscribe(ctx, scopeA, nil)

	start := time.Now()
	for i := 1; i <= 3*size; i++ {
		a.Publish(ctx, event(scopeA, int64(i), "x"))
		if i%size == 0 {
			for j := i - size + 1; j <= i; j++ {
				if ev := recv(t, fast); ev.ID != int64(j) {
					t.Fatalf("fast got id %d, want %d", ev.ID, j)
				}
			}
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("publishing %d events took %s: blocked by slow subscribers?", 3*size, d)
	}
	for name, ch := range map[string]<-chan store.Event{"local": slowLocal, "remote": slowRemote} {
		got := expectClosed(t, ch, size)
		if len(got) != size {
			t.Fatalf("slow %s subscriber got %d events before being dropped, want %d", name, len(got), size)
		}
		for i, ev := range got {
			if ev.ID != int64(i+1) {
				t.Fatalf("slow %s event %d has id %d", name, i, ev.ID)
			}
		}
	}
	// The bus goes on for the others.
	a.Publish(ctx, event(scopeA, 99, "x"))
	if ev := recv(t, fast); ev.ID != 99 {
		t.Fatalf("fast got id %d, want 99", ev.ID)
	}
}

func TestRedisBusCloseStopsGoroutines(t *testing.T) {
	client := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t)
	if err := client.Ping(t.Context()).Err(); err != nil { // opens the pool's connection first
		t.Fatal(err)
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	bus, err := events.NewRedisBus(t.Context(), client, prefix, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := bus.Subscribe(ctx, scopeA, nil)
	bus.Publish(ctx, event(scopeA, 1, "x"))
	sameEvent(t, recv(t, sub), event(scopeA, 1, "x"))

	closed := make(chan error, 1)
	go func() { closed <- bus.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return")
	}
	if err := bus.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	expectClosed(t, sub, 0)
	expectClosed(t, bus.Subscribe(ctx, scopeA, nil), 0)
	bus.Publish(ctx, event(scopeA, 2, "x")) // no-op after Close
}

func TestNewRedisBusFailsWithoutRedis(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer client.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if bus, err := events.NewRedisBus(ctx, client, "x:", testLogger(t)); err == nil {
		_ = bus.Close()
		t.Fatal("NewRedisBus succeeded without a Redis")
	}
}

// connTracker is a dialer whose connections the test can cut, as a network
// failure would, without touching the other clients of the shared Redis.
type connTracker struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (c *connTracker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.conns = append(c.conns, conn)
	c.mu.Unlock()
	return conn, nil
}

func (c *connTracker) cutAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		_ = conn.Close()
	}
	c.conns = nil
}

func trackedClient(t *testing.T) (*redis.Client, *connTracker) {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	tracker := &connTracker{}
	opts.Dialer = tracker.dial
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	return client, tracker
}

func TestRedisBusReconnectDropsSubscribers(t *testing.T) {
	flaky, tracker := trackedClient(t)
	prefix := testenv.RedisPrefix(t)
	a := newRedisBus(t, flaky, prefix)
	b := newRedisBus(t, testenv.RedisClient(t), prefix)
	ctx := t.Context()

	sub := a.Subscribe(ctx, scopeA, nil)
	b.Publish(ctx, event(scopeA, 1, "x"))
	sameEvent(t, recv(t, sub), event(scopeA, 1, "x"))

	tracker.cutAll()
	// Messages may have been missed: once subscribed again the bus drops its
	// subscribers so they resume from the store.
	expectClosed(t, sub, 0)

	sub2 := a.Subscribe(ctx, scopeA, nil)
	b.Publish(ctx, event(scopeA, 2, "x"))
	sameEvent(t, recv(t, sub2), event(scopeA, 2, "x"))
	// A's publishing connections were cut too: the pool dials again.
	subB := b.Subscribe(ctx, scopeA, nil)
	a.Publish(ctx, event(scopeA, 3, "x"))
	sameEvent(t, recv(t, sub2), event(scopeA, 3, "x"))
	sameEvent(t, recv(t, subB), event(scopeA, 3, "x"))
}

func TestRedisBusIdlePing(t *testing.T) {
	client := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t)
	// The interval is also how long a pong may take: 20 ms was missed on a
	// loaded machine (a reconnect, which drops subscribers by design).
	a := newRedisBus(t, client, prefix, events.WithPingInterval(100*time.Millisecond))
	b := newRedisBus(t, client, prefix)
	sub := a.Subscribe(t.Context(), scopeA, nil)

	time.Sleep(600 * time.Millisecond) // several idle ping rounds
	b.Publish(t.Context(), event(scopeA, 1, "x"))
	// Still the first subscription: pings that are answered drop nobody.
	sameEvent(t, recv(t, sub), event(scopeA, 1, "x"))
}

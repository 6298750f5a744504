package httpapi_test

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/httpapi"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
)

// degradedBudget is how long an event stored on another node may take to
// reach a stream while Redis is down: the stream polls the store every
// 500 ms then (the brief's "within about a second", with room for a loaded
// machine).
const degradedBudget = 2500 * time.Millisecond

// TestStreamPollsStoreWhileRedisIsDown: a stream served on node A with a
// RedisBus, events written on node B (store, then publish on B's bus). With
// Redis stopped mid-stream, B's events still reach the client through the
// store within degradedBudget; after Redis restarts A's bus is healthy again
// and the stream goes back to live (the heartbeat, the only other reason to
// read the store, is an hour).
func TestStreamPollsStoreWhileRedisIsDown(t *testing.T) {
	ctx := t.Context()
	st, err := postgres.Open(ctx, testenv.PostgresURL(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })

	redisSrv := testenv.StartRedis(t)
	opts, err := redis.ParseURL(redisSrv.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	logger := slog.New(slog.NewTextHandler(tLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	newBus := func() *events.RedisBus {
		b, err := events.NewRedisBus(ctx, client, "oi:", logger)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	busA, busB := newBus(), newBus()

	scope := store.Scope{OrgID: "acme", UserID: "alice"}
	if _, err := st.CreateAgent(ctx, store.Agent{Scope: scope, ID: "a1", Name: "a1"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{
		Store: st, Bus: busA, Logger: logger,
		Heartbeat: time.Hour, // only the live feed or the degraded poll may tell the stream to read
	}).Handler())
	t.Cleanup(srv.Close)
	ids, streamErr := readStreamIDs(t, srv.URL+"/api/agents/a1/stream", scope)

	// writeOnB stores one event as node B does and publishes it on B's bus.
	writeOnB := func() int64 {
		t.Helper()
		stored, err := st.AppendEvents(ctx, []store.Event{{Scope: scope, AgentID: "a1", Type: "step.completed"}})
		if err != nil {
			t.Fatal(err)
		}
		busB.Publish(ctx, stored...)
		return stored[0].ID
	}
	// expect waits up to d for the stream to send id (and nothing else first).
	expect := func(id int64, d time.Duration) bool {
		t.Helper()
		select {
		case got := <-ids:
			if got != id {
				t.Fatalf("stream sent id %d, want %d", got, id)
			}
			return true
		case err := <-streamErr:
			t.Fatalf("stream ended: %v", err)
		case <-time.After(d):
		}
		return false
	}

	if id := writeOnB(); !expect(id, 10*time.Second) {
		t.Fatal("live event from B not streamed while Redis is up")
	}

	redisSrv.Stop()
	waitCond(t, "A's bus reports Redis lost", func() bool { return !busA.Healthy() })
	for range 3 {
		start := time.Now()
		id := writeOnB()
		if !expect(id, 10*time.Second) {
			t.Fatalf("event %d stored on B not streamed with Redis down", id)
		}
		took := time.Since(start)
		t.Logf("with Redis down, event %d streamed after %s", id, took)
		if took > degradedBudget {
			t.Errorf("with Redis down, event %d took %s to stream, want at most %s", id, took, degradedBudget)
		}
	}

	redisSrv.Start()
	waitCond(t, "both buses subscribed again", func() bool { return busA.Healthy() && busB.Healthy() })
	// B's publisher may still be pausing after its failures: a publish it
	// skips is not seen until the next one, so write until one streams.
	deadline := time.Now().Add(15 * time.Second)
	var pending []int64
	for {
		if !busA.Healthy() {
			t.Fatal("A's bus lost Redis again")
		}
		pending = append(pending, writeOnB())
		got := 0
		for got < len(pending) && expect(pending[got], time.Second) {
			got++
		}
		pending = pending[got:]
		if got > 0 && len(pending) == 0 {
			break // streamed live: with a healthy bus nothing else reads the store
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream did not go live again after Redis restarted (%d events unsent)", len(pending))
		}
	}
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 15s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type tLogWriter struct{ t testing.TB }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

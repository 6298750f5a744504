package events_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
)

type wakeCall struct {
	scope   store.Scope
	agentID string
}

// wakeRecorder is a WakeFunc that remembers its calls.
type wakeRecorder struct {
	mu    sync.Mutex
	calls []wakeCall
	cond  chan struct{} // closed and replaced on every call
}

func newWakeRecorder() *wakeRecorder { return &wakeRecorder{cond: make(chan struct{})} }

func (r *wakeRecorder) onWake(scope store.Scope, agentID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, wakeCall{scope, agentID})
	close(r.cond)
	r.cond = make(chan struct{})
}

func (r *wakeRecorder) snapshot() ([]wakeCall, chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wakeCall(nil), r.calls...), r.cond
}

// waitFor waits until agentID has been woken and returns all calls so far.
func (r *wakeRecorder) waitFor(t *testing.T, agentID string) []wakeCall {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		calls, changed := r.snapshot()
		for _, c := range calls {
			if c.agentID == agentID {
				return calls
			}
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no wake for %s within %s (calls %v)", agentID, waitTimeout, calls)
		}
	}
}

func newRedisWaker(t *testing.T, client *redis.Client, prefix, node string, rec *wakeRecorder) *events.RedisWaker {
	t.Helper()
	w, err := events.NewRedisWaker(t.Context(), client, prefix, node, rec.onWake, testLogger(t))
	if err != nil {
		t.Fatalf("NewRedisWaker: %v", err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func TestRedisWakerReachesEveryNodeOnce(t *testing.T) {
	client := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t)
	recA, recB, recC := newWakeRecorder(), newWakeRecorder(), newWakeRecorder()
	a := newRedisWaker(t, client, prefix, "node-1", recA)
	b := newRedisWaker(t, client, prefix, "node-2", recB)
	// Same node id as a: the random instance id still tells them apart.
	newRedisWaker(t, client, prefix, "node-1", recC)
	other := newWakeRecorder()
	newRedisWaker(t, client, testenv.RedisPrefix(t), "node-3", other)

	if err := a.Wake(t.Context(), scopeA, "agent-1"); err != nil {
		t.Fatalf("Wake: %v", err)
	}
	// The local call is made before Wake returns.
	if calls, _ := recA.snapshot(); len(calls) != 1 || calls[0] != (wakeCall{scopeA, "agent-1"}) {
		t.Fatalf("node-1 calls right after Wake: %v", calls)
	}
	recB.waitFor(t, "agent-1")
	// Barrier: b wakes after it saw agent-1, so when a and c see the barrier
	// through Redis they have handled the earlier message too.
	if err := b.Wake(t.Context(), scopeB, "barrier"); err != nil {
		t.Fatalf("Wake: %v", err)
	}
	want := []wakeCall{{scopeA, "agent-1"}, {scopeB, "barrier"}}
	for name, rec := range map[string]*wakeRecorder{"a": recA, "b": recB, "c": recC} {
		rec.waitFor(t, "barrier")
		time.Sleep(50 * time.Millisecond)
		calls, _ := rec.snapshot()
		if len(calls) != len(want) || calls[0] != want[0] || calls[1] != want[1] {
			t.Errorf("waker %s: calls %v, want %v", name, calls, want)
		}
	}
	if calls, _ := other.snapshot(); len(calls) != 0 {
		t.Errorf("waker on another prefix was called: %v", calls)
	}
}

func TestRedisWakerClose(t *testing.T) {
	client := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t)
	rec := newWakeRecorder()
	w, err := events.NewRedisWaker(t.Context(), client, prefix, "n", rec.onWake, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Wake(t.Context(), scopeA, ""); err == nil {
		t.Fatal("Wake with an empty agent id succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.Wake(t.Context(), scopeA, "agent-1"); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("Wake after Close: %v, want ErrClosed", err)
	}
	if calls, _ := rec.snapshot(); len(calls) != 0 {
		t.Fatalf("calls after Close: %v", calls)
	}
	if _, err := events.NewRedisWaker(t.Context(), client, prefix, "n", nil, nil); err == nil {
		t.Fatal("NewRedisWaker accepted a nil WakeFunc")
	}
}

func TestLocalWaker(t *testing.T) {
	rec := newWakeRecorder()
	w := events.NewLocalWaker(rec.onWake)
	if err := w.Wake(t.Context(), scopeA, "agent-1"); err != nil {
		t.Fatal(err)
	}
	if calls, _ := rec.snapshot(); len(calls) != 1 || calls[0] != (wakeCall{scopeA, "agent-1"}) {
		t.Fatalf("calls: %v", calls)
	}
	_ = w.Close()
	if err := w.Wake(t.Context(), scopeA, "agent-1"); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("Wake after Close: %v, want ErrClosed", err)
	}
}

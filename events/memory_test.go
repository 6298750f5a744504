package events_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/store"
)

func TestMemoryBusFanOutScopeAndMatch(t *testing.T) {
	bus := events.NewMemoryBus(16)
	defer bus.Close()
	ctx := t.Context()

	all1 := bus.Subscribe(ctx, scopeA, nil)
	all2 := bus.Subscribe(ctx, scopeA, nil)
	onlyDone := bus.Subscribe(ctx, scopeA, func(ev store.Event) bool { return ev.Type == "run.completed" })
	other := bus.Subscribe(ctx, scopeB, nil)

	evs := []store.Event{event(scopeA, 1, "step.started"), event(scopeA, 2, "run.completed"), event(scopeA, 3, "llm.token")}
	bus.Publish(ctx, evs[0])
	bus.Publish(ctx, evs[1:]...)

	for _, ch := range []<-chan store.Event{all1, all2} {
		for _, want := range evs {
			sameEvent(t, recv(t, ch), want)
		}
	}
	sameEvent(t, recv(t, onlyDone), evs[1])
	expectNothing(t, onlyDone, 50*time.Millisecond)
	expectNothing(t, other, 50*time.Millisecond)

	b := event(scopeB, 4, "step.started")
	bus.Publish(ctx, b)
	sameEvent(t, recv(t, other), b)
	expectNothing(t, all1, 50*time.Millisecond)
}

func TestMemoryBusSlowSubscriberDropped(t *testing.T) {
	const size = 4
	bus := events.NewMemoryBus(size)
	defer bus.Close()
	ctx := t.Context()

	slow := bus.Subscribe(ctx, scopeA, nil)
	fast := bus.Subscribe(ctx, scopeA, nil)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 3*size; i++ {
			bus.Publish(ctx, event(scopeA, int64(i), "x"))
			if i%size == 0 {
				// fast keeps up: it empties its buffer after every size events.
				for j := i - size + 1; j <= i; j++ {
					select {
					case ev := <-fast:
						if ev.ID != int64(j) {
							t.Errorf("fast got id %d, want %d", ev.ID, j)
						}
					case <-time.After(waitTimeout):
						t.Errorf("fast got nothing, want id %d", j)
						return
					}
				}
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Publish blocked on a slow subscriber")
	}

	got := expectClosed(t, slow, size)
	if len(got) != size {
		t.Fatalf("slow got %d events before being dropped, want %d", len(got), size)
	}
	for i, ev := range got {
		if ev.ID != int64(i+1) {
			t.Fatalf("slow event %d has id %d", i, ev.ID)
		}
	}
	// The fast one is still subscribed.
	bus.Publish(ctx, event(scopeA, 100, "x"))
	if ev := recv(t, fast); ev.ID != 100 {
		t.Fatalf("fast got id %d, want 100", ev.ID)
	}
}

func TestMemoryBusSubscriptionEndsWithContext(t *testing.T) {
	bus := events.NewMemoryBus(0)
	defer bus.Close()

	ctx, cancel := context.WithCancel(t.Context())
	ch := bus.Subscribe(ctx, scopeA, nil)
	keep := bus.Subscribe(t.Context(), scopeA, nil)
	cancel()
	expectClosed(t, ch, 0)

	bus.Publish(t.Context(), event(scopeA, 1, "x")) // must not panic on the closed channel
	sameEvent(t, recv(t, keep), event(scopeA, 1, "x"))

	done, cancelDone := context.WithCancel(t.Context())
	cancelDone()
	expectClosed(t, bus.Subscribe(done, scopeA, nil), 1)
}

func TestMemoryBusClose(t *testing.T) {
	bus := events.NewMemoryBus(8)
	ch1 := bus.Subscribe(t.Context(), scopeA, nil)
	ch2 := bus.Subscribe(t.Context(), scopeB, nil)
	bus.Publish(t.Context(), event(scopeA, 1, "x"))

	if err := bus.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := bus.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := expectClosed(t, ch1, 1); len(got) != 1 {
		t.Fatalf("buffered events before close: got %d, want 1", len(got))
	}
	expectClosed(t, ch2, 0)
	expectClosed(t, bus.Subscribe(t.Context(), scopeA, nil), 0)
	bus.Publish(t.Context(), event(scopeA, 2, "x")) // no-op, no panic
}

// TestMemoryBusConcurrent exercises publishers, subscribers, cancellations and
// Close at once for the race detector.
func TestMemoryBusConcurrent(t *testing.T) {
	bus := events.NewMemoryBus(8)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				bus.Publish(context.Background(), event(scopeA, int64(i), "x"), event(scopeB, int64(i), "y"))
			}
		}()
	}
	for s := 0; s < 8; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				ctx, cancel := context.WithCancel(context.Background())
				ch := bus.Subscribe(ctx, scopeA, func(ev store.Event) bool { return ev.ID%2 == 0 })
				for n := 0; n < 5; n++ {
					if _, ok := <-ch; !ok {
						break
					}
				}
				cancel()
				for range ch { // drains until the close
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

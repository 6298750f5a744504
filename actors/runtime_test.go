package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// Wakes from other goroutines (the mailbox, send_message) may race Stop;
// under -race this fails if Stop and Wake share unsynchronised state.
func TestWakeRacingStop(t *testing.T) {
	h := newHarness(t, Config{})
	h.start()
	h.createAgent("a1")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					h.rt.Wake(testScope, "a1")
					h.rt.AgentChanged(testScope, "a1")
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.rt.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	close(stop)
	wg.Wait()
	if _, err := h.rt.Stats(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stats after stop: %v, want ErrNotRunning", err)
	}
}

// A Start that fails half way leaves nothing running.
func TestFailedStartStopsWhatItStarted(t *testing.T) {
	h := newHarness(t, Config{})
	_ = h.store.Close() // recovery's first read fails
	rt := h.newRuntime()
	if err := rt.Start(context.Background()); err == nil {
		t.Fatal("start over a closed store succeeded")
	}
	if _, err := rt.Stats(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stats after a failed start: %v, want ErrNotRunning", err)
	}
	rt.Wake(testScope, "a1") // a no-op, not a panic
	if err := rt.Stop(context.Background()); err != nil {
		t.Fatalf("stop after a failed start: %v", err)
	}
}

// Stopping while many agents are mid-run returns only once every worker has
// ended, and loses nothing: a new runtime over the same store finishes every
// run.
func TestShutdownUnderLoadLosesNothing(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) { testShutdownUnderLoad(t, kind) })
	}
}

func testShutdownUnderLoad(t *testing.T, kind string) {
	h := newHarnessOn(t, kind, Config{MaxRunning: 4, IdleTimeout: time.Hour})
	h.llm.SetDefault(func(llmtest.ChatRequest) llmtest.Reply {
		return llmtest.Reply{Text: "a long answer, streamed slowly", ChunkSize: 2, ChunkDelay: 20 * time.Millisecond}
	})
	h.start()
	var runs []string
	for i := range 8 {
		id := fmt.Sprintf("agent-%d", i)
		h.createAgent(id)
		for range 2 {
			runs = append(runs, h.createRun(id, "work"))
		}
	}
	waitFor(t, 10*time.Second, "agents to be running", func() bool { return h.stats().RunningAgents == 4 })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := h.rt.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if n := h.rt.workers.count(); n != 0 {
		t.Fatalf("%d workers still running after Stop", n)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stop took %s", took)
	}
	unfinished := 0
	for _, id := range runs {
		if !store.RunFinished(h.getRun(id).Status) {
			unfinished++
		}
	}
	if unfinished == 0 {
		t.Fatal("every run finished before the stop: the test stopped nothing")
	}

	h.llm.SetDefault(func(llmtest.ChatRequest) llmtest.Reply { return llmtest.Reply{Text: "ok"} })
	h.start()
	for _, id := range runs {
		if run := h.waitRun(id, 20*time.Second); run.Status != store.RunCompleted {
			t.Fatalf("run after restart = %+v", run)
		}
	}
}

// stuckRouter runs the real registry's tools, but its first call blocks,
// ignoring its context, until released: a worker Stop cannot stop.
type stuckRouter struct {
	*tools.Registry
	entered, release chan struct{}
	once             sync.Once
}

func (s *stuckRouter) RouteDetail(ctx context.Context, call tools.Call, allowed []string) tools.Routed {
	s.once.Do(func() {
		close(s.entered)
		<-s.release
	})
	return tools.Routed{Result: tools.Result{Content: "done"}, Outcome: tools.OutcomeOK}
}

// Stop returns when its context ends even with a worker it cannot stop, and
// that worker can no longer write to the store.
func TestStopHonoursContextAndFencesStragglers(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) { testStopFencesStragglers(t, kind) })
	}
}

func testStopFencesStragglers(t *testing.T, kind string) {
	h := newHarnessOn(t, kind, Config{IdleTimeout: time.Hour})
	router := &stuckRouter{Registry: tools.NewRegistry(), entered: make(chan struct{}), release: make(chan struct{})}
	h.router = router
	h.llm.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "stuck", Arguments: "{}"}}})
	h.start()
	h.createAgent("a1")
	runID := h.createRun("a1", "use the tool")
	select {
	case <-router.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the tool was never called")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.rt.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop = %v, want the context's deadline", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("stop took %s with a 300ms context", took)
	}
	if n := h.rt.workers.count(); n != 1 {
		t.Fatalf("workers after stop = %d, want the stuck one", n)
	}
	// What the model asked for is stored before the tool runs; released after
	// Stop returned, the worker would store the tool's result: it must not.
	before, err := h.store.GetCheckpoint(context.Background(), testScope, runID)
	if err != nil {
		t.Fatalf("the open step's checkpoint: %v", err)
	}
	close(router.release)
	waitFor(t, 10*time.Second, "the straggler to end", func() bool { return h.rt.workers.count() == 0 })
	after, err := h.store.GetCheckpoint(context.Background(), testScope, runID)
	if err != nil || !after.UpdatedAt.Equal(before.UpdatedAt) || string(after.State) != string(before.State) {
		t.Fatalf("checkpoint changed after stop: %v (err %v), was %v", after.UpdatedAt, err, before.UpdatedAt)
	}
	evs, _, err := h.store.ListEvents(context.Background(), testScope, store.EventFilter{RunID: runID, Types: []string{"step.completed"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 {
		t.Fatalf("step.completed stored after Stop returned: %d", len(evs))
	}
}

// Stats honours its context: a cancelled one answers at once with its error.
func TestStatsHonoursContext(t *testing.T) {
	h := newHarness(t, Config{})
	h.start()
	if _, err := h.rt.Stats(t.Context()); err != nil {
		t.Fatalf("stats: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.rt.Stats(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("stats with a cancelled context: %v, want context.Canceled", err)
	}
}

package actors

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// lookTool is a read-only tool; while gate is open (non-nil) a call waits
// for it to close.
type lookTool struct {
	gate chan struct{}
	runs atomic.Int64
}

func (l *lookTool) Spec() llm.ToolSpec {
	return llm.ToolSpec{Name: "look", Description: "reads something", Parameters: json.RawMessage(`{"type":"object"}`)}
}

func (l *lookTool) ReadOnly() bool { return true }

func (l *lookTool) Run(ctx context.Context, _ tools.Call) (tools.Result, error) {
	l.runs.Add(1)
	if l.gate != nil {
		select {
		case <-l.gate:
		case <-ctx.Done():
			return tools.Result{}, ctx.Err()
		}
	}
	return tools.Result{Content: "seen"}, nil
}

// stepCounter counts the steps a store is asked to save.
type stepCounter struct {
	closableStore
	saves atomic.Int64
}

func (s *stepCounter) SaveStep(ctx context.Context, scope store.Scope, runID string, cp *store.Checkpoint, evs []store.Event) ([]store.Event, error) {
	s.saves.Add(1)
	return s.closableStore.SaveStep(ctx, scope, runID, cp, evs)
}

// A step whose calls all only read is stored once, when its calls are done
// (the model is asked again after a crash in between, which repeats no side
// effect); a step with a call that may write stores its open state before
// the call runs; a read-only call slower than openStepGrace has its open
// step stored while it runs, so a watcher sees it in flight.
func TestReadOnlyStepStoredOnce(t *testing.T) {
	for _, c := range []struct {
		name      string
		tool      string
		slow      bool
		wantSaves int64
	}{
		{"read-only", "look", false, 1},
		{"may write", "write", false, 2},
		{"slow read-only", "look", true, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Config{IdleTimeout: time.Hour})
			counter := &stepCounter{closableStore: h.store}
			h.store = counter
			look := &lookTool{}
			if c.slow {
				look.gate = make(chan struct{})
			}
			write := &dangerTool{name: "write"}
			reg := tools.NewRegistry()
			for _, tl := range []tools.Tool{look, write} {
				if err := reg.Register(tl); err != nil {
					t.Fatal(err)
				}
			}
			h.router = reg
			h.llm.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "c1", Name: c.tool, Arguments: `{}`}}})
			h.llm.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
				return llmtest.Reply{Text: "done: " + lastToolMessage(req)}
			})
			h.start()
			h.createAgent("a1")
			runID := h.createRun("a1", "go")
			if c.slow {
				waitFor(t, 10*time.Second, "the slow call's open step to be stored", func() bool {
					return len(h.eventsOf(runID, "tool.called")) == 1
				})
				if n := len(h.eventsOf(runID, "tool.result")); n != 0 {
					t.Fatalf("%d tool.result stored while the call runs", n)
				}
				close(look.gate)
			}
			run := h.waitRun(runID, 15*time.Second)
			if run.Status != store.RunCompleted {
				t.Fatalf("run %s: %+v", run.Status, run.Error)
			}
			if n := counter.saves.Load(); n != c.wantSaves {
				t.Errorf("%d steps saved, want %d", n, c.wantSaves)
			}
			var types []string
			for _, e := range h.eventsOf(runID) {
				types = append(types, e.Type)
			}
			want := []string{"run.started", "step.started", "llm.called", "tool.called", "tool.result", "step.completed",
				"step.started", "llm.called", "step.completed", "run.completed"}
			if len(types) != len(want) {
				t.Fatalf("events %v, want %v", types, want)
			}
			for i := range want {
				if types[i] != want[i] {
					t.Fatalf("events %v, want %v", types, want)
				}
			}
		})
	}
}

package actors

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
	"github.com/openintern/openintern/store/sqlite"
	"github.com/openintern/openintern/tools"
)

var testScope = store.Scope{OrgID: "acme", UserID: "ann", ProjectID: "default"}

// harness is a runtime over a real SQLite store, an in-process bus and the
// local LLM test server.
type harness struct {
	t      *testing.T
	store  closableStore
	bus    *events.MemoryBus
	llm    *llmtest.Server
	model  llm.Provider
	router ToolRouter
	cfg    Config
	rt     *Runtime
}

type closableStore interface {
	Store
	Close() error
}

// newHarness makes a harness over SQLite.
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	return newHarnessOn(t, "sqlite", cfg)
}

// newHarnessOn makes a harness over "sqlite" (a temp dir) or "postgres" (a
// schema of its own in the test database).
func newHarnessOn(t *testing.T, kind string, cfg Config) *harness {
	t.Helper()
	var (
		st  closableStore
		err error
	)
	switch kind {
	case "sqlite":
		st, err = sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "test.db"), quietLogger())
	case "postgres":
		st, err = postgres.Open(context.Background(), testenv.PostgresURL(t), quietLogger())
	default:
		t.Fatalf("unknown store %q", kind)
	}
	if err != nil {
		t.Fatalf("open %s: %v", kind, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	bus := events.NewMemoryBus(1024)
	t.Cleanup(func() { _ = bus.Close() })
	srv := llmtest.NewServer(t)
	// No retries in the provider: a failure the server is told to give is the
	// failure the agent sees.
	model := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.URL(), Model: "test-model", Timeout: 30 * time.Second, MaxRetries: -1})
	return &harness{t: t, store: st, bus: bus, llm: srv, model: model, router: tools.NewRegistry(), cfg: cfg}
}

// quietLogger discards the runtime's logs unless OPENINTERN_TEST_LOG is set
// (then they go to stderr, to follow a failing test).
func quietLogger() *slog.Logger {
	if os.Getenv("OPENINTERN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newRuntime makes a runtime over the harness's store; it is stopped when the
// test ends.
func (h *harness) newRuntime() *Runtime {
	rt := New(h.cfg, h.store, h.bus, h.model, h.router, quietLogger())
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = rt.Stop(ctx)
	})
	return rt
}

// start makes and starts the harness's runtime.
func (h *harness) start() *Runtime {
	h.t.Helper()
	h.rt = h.newRuntime()
	if err := h.rt.Start(context.Background()); err != nil {
		h.t.Fatalf("start: %v", err)
	}
	return h.rt
}

func (h *harness) createAgent(id string) {
	h.t.Helper()
	if _, err := h.store.CreateAgent(context.Background(), store.Agent{Scope: testScope, ID: id, Name: id}); err != nil {
		h.t.Fatalf("create agent %s: %v", id, err)
	}
}

// createRun stores a pending run for the agent and wakes it, as the API does.
func (h *harness) createRun(agentID, input string) string {
	h.t.Helper()
	run, _, err := h.store.CreateRun(context.Background(), store.NewRun{
		Scope: testScope, RunID: NewRunID(), MessageID: "msg_" + NewRunID()[4:], AgentID: agentID,
		SessionKey: "default", Input: input, SenderType: store.SenderUser, SenderID: testScope.UserID,
	})
	if err != nil {
		h.t.Fatalf("create run: %v", err)
	}
	if h.rt != nil {
		h.rt.Wake(testScope, agentID)
	}
	return run.ID
}

func (h *harness) getRun(id string) store.Run {
	h.t.Helper()
	run, err := h.store.GetRun(context.Background(), testScope, id)
	if err != nil {
		h.t.Fatalf("get run %s: %v", id, err)
	}
	return run
}

// waitRun waits until the run has ended.
func (h *harness) waitRun(id string, timeout time.Duration) store.Run {
	h.t.Helper()
	var run store.Run
	waitFor(h.t, timeout, "run "+id+" to end", func() bool {
		run = h.getRun(id)
		return store.RunFinished(run.Status)
	})
	return run
}

func (h *harness) stats() Stats {
	h.t.Helper()
	st, err := h.rt.Stats(context.Background())
	if err != nil {
		h.t.Fatalf("stats: %v", err)
	}
	return st
}

// stateChange is the payload of an agent.state_changed event.
type stateChange struct {
	From      string    `json:"from"`
	To        string    `json:"to"`
	Reason    string    `json:"reason"`
	RetryInMS int64     `json:"retry_in_ms"`
	TS        time.Time `json:"-"`
}

func (h *harness) stateChanges(agentID string) []stateChange {
	h.t.Helper()
	evs, _, err := h.store.ListEvents(context.Background(), testScope, store.EventFilter{AgentID: agentID, Types: []string{"agent.state_changed"}, Limit: 1000})
	if err != nil {
		h.t.Fatalf("list events: %v", err)
	}
	out := make([]stateChange, 0, len(evs))
	for _, e := range evs {
		var c stateChange
		if err := json.Unmarshal(e.Payload, &c); err != nil {
			h.t.Fatalf("state change payload %s: %v", e.Payload, err)
		}
		c.TS = e.TS
		out = append(out, c)
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

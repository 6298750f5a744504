package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/httpapi"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
	"github.com/openintern/openintern/store/sqlite"
)

// finishedRun creates, runs and completes a run of a1 with a few steps.
func finishedRun(t *testing.T, st store.Store, scope store.Scope, runID string) {
	t.Helper()
	ctx := t.Context()
	if _, _, err := st.CreateRun(ctx, store.NewRun{Scope: scope, RunID: runID, MessageID: "msg-" + runID, AgentID: "a1", Input: "go"}); err != nil {
		t.Fatal(err)
	}
	if c, err := st.ClaimNextRun(ctx, scope, "a1", "unused"); err != nil || c.Run.ID != runID {
		t.Fatalf("claim = %+v, %v", c.Run, err)
	}
	for step := 1; step <= 3; step++ {
		if _, err := st.SaveStep(ctx, scope, runID, &store.Checkpoint{Step: step, State: json.RawMessage(`{}`)},
			[]store.Event{{Type: "llm.called"}, {Type: "step.completed"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.FinishRun(ctx, scope, runID, store.RunResult{Status: store.RunCompleted, Output: "done", Steps: 3},
		[]store.Event{{Type: "run.completed"}}); err != nil {
		t.Fatal(err)
	}
}

// foreground returns the round trips made for requests, not background work.
func foreground(rt map[string]int64) map[string]int64 {
	maps.DeleteFunc(rt, func(k string, _ int64) bool { return strings.HasPrefix(k, "background: ") })
	return rt
}

// tripsSince returns the round trips made since before, by kind.
func tripsSince(st *postgres.Store, before map[string]int64) (map[string]int64, int64) {
	diff := map[string]int64{}
	var n int64
	for k, v := range foreground(st.RoundTrips()) {
		if d := v - before[k]; d > 0 {
			diff[k] = d
			n += d
		}
	}
	return diff, n
}

// TestRunStreamOpensInOneRoundTrip: on PostgreSQL the stream of a finished
// run, from its start or after a resume point, is served with one store
// round trip, a batch reading the run and its events; an unknown run and
// another scope's run get their 404 with one too, a malformed id with none.
func TestRunStreamOpensInOneRoundTrip(t *testing.T) {
	ctx := t.Context()
	st, err := postgres.Open(ctx, testenv.PostgresURL(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	scope := store.Scope{OrgID: "acme", UserID: "alice"}
	if _, err := st.CreateAgent(ctx, store.Agent{Scope: scope, ID: "a1", Name: "a1"}); err != nil {
		t.Fatal(err)
	}
	const runID = "run_00000000-0000-0000-0000-0000000000a1"
	finishedRun(t, st, scope, runID)
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{
		Store: st, Bus: events.NewMemoryBus(0), Logger: slog.New(slog.DiscardHandler), Heartbeat: time.Hour,
	}).Handler())
	t.Cleanup(srv.Close)
	env := runPrevEnv{stored: st, scope: scope}
	url := srv.URL + "/api/runs/" + runID + "/stream"

	oneTrip := func(t *testing.T, before map[string]int64) {
		t.Helper()
		diff, n := tripsSince(st, before)
		if n != 1 {
			t.Fatalf("the request made %d round trips, want 1: %v", n, diff)
		}
		for k := range diff {
			if !strings.HasPrefix(k, "batch: ") {
				t.Fatalf("the round trip was %q, want the batch of the run and its events", k)
			}
		}
	}

	t.Run("whole", func(t *testing.T) {
		for range 2 { // the first may prepare the statements
			before := foreground(st.RoundTrips())
			got, end := collectRunStream(t, readRunStream(t, url, scope))
			oneTrip(t, before)
			wantRunStream(t, env, runID, got, end)
		}
	})

	t.Run("resumed", func(t *testing.T) {
		all, _, err := st.ListEvents(ctx, scope, store.EventFilter{RunID: runID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		before := foreground(st.RoundTrips())
		got, end := collectRunStream(t, readRunStream(t, url+"?last_event_id="+strconv.FormatInt(all[2].ID, 10), scope))
		oneTrip(t, before)
		if end != "run.completed" || len(got) != len(all)-3 {
			t.Fatalf("resumed stream sent %d events and ended %q; want %d and run.completed", len(got), end, len(all)-3)
		}
		for i, f := range got {
			if f.id != all[3+i].ID {
				t.Fatalf("resumed stream's event %d is %d, want %d", i, f.id, all[3+i].ID)
			}
		}
	})

	notFound := func(t *testing.T, url string, scope store.Scope, wantTrips int64, wantMessage string) {
		t.Helper()
		before := foreground(st.RoundTrips())
		resp, b := getAs(t, ctx, url, scope)
		var body struct {
			Error struct{ Code, Message string }
		}
		if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
			json.Unmarshal(b, &body) != nil || body.Error.Code != "not_found" || body.Error.Message != wantMessage {
			t.Fatalf("stream = %d %s %s, want 404 not_found %q", resp.StatusCode, resp.Header.Get("Content-Type"), b, wantMessage)
		}
		if diff, n := tripsSince(st, before); n != wantTrips {
			t.Fatalf("the 404 made %d round trips, want %d: %v", n, wantTrips, diff)
		}
	}
	t.Run("unknown", func(t *testing.T) {
		const id = "run_00000000-0000-0000-0000-0000000000ff"
		notFound(t, srv.URL+"/api/runs/"+id+"/stream", scope, 1, `run "`+id+`" not found`)
	})
	t.Run("other scope", func(t *testing.T) {
		notFound(t, url, store.Scope{OrgID: "acme", UserID: "bob"}, 1, `run "`+runID+`" not found`)
	})
	t.Run("malformed", func(t *testing.T) {
		notFound(t, srv.URL+"/api/runs/nope/stream", scope, 0, `run "nope" not found`)
	})
	t.Run("bad cursor", func(t *testing.T) {
		// An unknown run's 404 goes before the cursor's 400.
		const id = "run_00000000-0000-0000-0000-0000000000ff"
		notFound(t, srv.URL+"/api/runs/"+id+"/stream?last_event_id=x", scope, 1, `run "`+id+`" not found`)
		resp, b := getAs(t, ctx, url+"?last_event_id=x", scope)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"invalid_cursor"`) {
			t.Fatalf("stream with a bad cursor = %d %s, want 400 invalid_cursor", resp.StatusCode, b)
		}
	})
}

// getAs GETs url as scope's user and reads the whole answer.
func getAs(t *testing.T, ctx context.Context, url string, scope store.Scope) (*http.Response, []byte) {
	t.Helper()
	resp := sendGetAs(t, ctx, url, scope)
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp, b
}

// oneReadStore is the real store with its one read of a run's stream,
// counting the reads a stream makes; after is called once, right after the
// first RunWithEvents returns.
type oneReadStore struct {
	httpapi.Store
	real                              store.Store
	runWithEvents, listEvents, getRun atomic.Int64
	after                             func()
}

func (s *oneReadStore) RunWithEvents(ctx context.Context, scope store.Scope, runID string, f store.EventFilter) (store.Run, []store.Event, error) {
	r, evs, err := s.real.RunWithEvents(ctx, scope, runID, f)
	if s.runWithEvents.Add(1) == 1 && s.after != nil {
		s.after()
	}
	return r, evs, err
}

func (s *oneReadStore) ListEvents(ctx context.Context, scope store.Scope, f store.EventFilter) ([]store.Event, int, error) {
	s.listEvents.Add(1)
	return s.Store.ListEvents(ctx, scope, f)
}

func (s *oneReadStore) GetRun(ctx context.Context, scope store.Scope, runID string) (store.Run, error) {
	s.getRun.Add(1)
	return s.Store.GetRun(ctx, scope, runID)
}

type oneReadEnv struct {
	st     *oneReadStore
	stored store.Store
	bus    events.Bus
	url    string // the streams' base URL
	scope  store.Scope
}

// oneReadEnvs runs fn on SQLite and PostgreSQL, each store with the memory
// bus and a server that does not read the store at heartbeats.
func oneReadEnvs(t *testing.T, fn func(t *testing.T, env oneReadEnv)) {
	oneReadEnvsBeating(t, time.Hour, fn)
}

// oneReadEnvsBeating is oneReadEnvs with streams that read the store every
// heartbeat.
func oneReadEnvsBeating(t *testing.T, heartbeat time.Duration, fn func(t *testing.T, env oneReadEnv)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			var st interface {
				store.Store
				Close() error
			}
			var err error
			if name == "sqlite" {
				st, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "oi.db"), slog.New(slog.DiscardHandler))
			} else {
				st, err = postgres.Open(ctx, testenv.PostgresURL(t), slog.New(slog.DiscardHandler))
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			scope := store.Scope{OrgID: "acme", UserID: "alice"}
			if _, err := st.CreateAgent(ctx, store.Agent{Scope: scope, ID: "a1", Name: "a1"}); err != nil {
				t.Fatal(err)
			}
			os := &oneReadStore{Store: st, real: st}
			bus := events.NewMemoryBus(0)
			srv := httptest.NewServer(httpapi.New(httpapi.Deps{
				Store: os, Bus: bus, Logger: slog.New(slog.DiscardHandler), Heartbeat: heartbeat,
			}).Handler())
			t.Cleanup(srv.Close)
			fn(t, oneReadEnv{st: os, stored: st, bus: bus, url: srv.URL + "/api/runs/", scope: scope})
		})
	}
}

// TestRunStreamOneReadThenLive: a running run's stream reads the run and its
// events once, then sends the live events that follow, with no other read.
func TestRunStreamOneReadThenLive(t *testing.T) {
	oneReadEnvs(t, func(t *testing.T, env oneReadEnv) {
		oneReadThenLive(t, env, "run_00000000-0000-0000-0000-0000000000b1", false)
	})
}

// TestRunStreamOneReadPendingThenLive: the stream of a run still pending
// when it opens (a client that follows its run as soon as it is created)
// reads the store once too, and then follows the run live from its start.
func TestRunStreamOneReadPendingThenLive(t *testing.T) {
	oneReadEnvs(t, func(t *testing.T, env oneReadEnv) {
		oneReadThenLive(t, env, "run_00000000-0000-0000-0000-0000000000b2", true)
	})
}

// oneReadThenLive opens the stream of a new run, claimed (with a first
// event) before it opens or, when pending, after its read; publishes the
// run's steps and end; and checks the stream sent them all with one read.
func oneReadThenLive(t *testing.T, env oneReadEnv, runID string, pending bool) {
	ctx := t.Context()
	if _, _, err := env.stored.CreateRun(ctx, store.NewRun{Scope: env.scope, RunID: runID, MessageID: "m-" + runID, AgentID: "a1", Input: "go"}); err != nil {
		t.Fatal(err)
	}
	claim := func() {
		if _, err := env.stored.ClaimNextRun(ctx, env.scope, "a1", "unused"); err != nil {
			t.Fatal(err)
		}
	}
	if !pending {
		claim()
		// Stored before the stream opens: its first read brings it.
		if _, err := env.stored.SaveStep(ctx, env.scope, runID, nil, []store.Event{{Type: "llm.called"}}); err != nil {
			t.Fatal(err)
		}
	}
	frames := readRunStream(t, env.url+runID+"/stream", env.scope)
	for deadline := time.Now().Add(10 * time.Second); env.st.runWithEvents.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stream never read the store")
		}
	}
	if pending {
		claim()
	}
	rec := events.Recorder{Bus: env.bus}
	for step := 1; step <= 5; step++ {
		if _, err := rec.Stored(env.stored.SaveStep(ctx, env.scope, runID, &store.Checkpoint{Step: step, State: json.RawMessage(`{}`)},
			[]store.Event{{Type: "tool.called"}, {Type: "step.completed"}})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rec.Stored(env.stored.FinishRun(ctx, env.scope, runID, store.RunResult{Status: store.RunCompleted, Output: "done"},
		[]store.Event{{Type: "run.completed"}})); err != nil {
		t.Fatal(err)
	}
	got, end := collectRunStream(t, frames)
	wantRunStream(t, runPrevEnv{stored: env.stored, scope: env.scope}, runID, got, end)
	if r, l, g := env.st.runWithEvents.Load(), env.st.listEvents.Load(), env.st.getRun.Load(); r != 1 || l != 0 || g != 0 {
		t.Fatalf("the stream read the run and its events %d times, then the events %d and the run %d times; want 1, 0, 0", r, l, g)
	}
}

// TestRunStreamOneReadPendingCancelled: a pending run cancelled with no
// event (its append failed) right after the stream's read is not read again
// at once (a pending run is followed live, like a running one), and the
// stream ends at the next heartbeat, which reads the run.
func TestRunStreamOneReadPendingCancelled(t *testing.T) {
	oneReadEnvsBeating(t, 300*time.Millisecond, func(t *testing.T, env oneReadEnv) {
		ctx := t.Context()
		const runID = "run_00000000-0000-0000-0000-0000000000c1"
		if _, _, err := env.stored.CreateRun(ctx, store.NewRun{Scope: env.scope, RunID: runID, MessageID: "m-c1", AgentID: "a1", Input: "go"}); err != nil {
			t.Fatal(err)
		}
		env.st.after = func() {
			if _, err := env.stored.CancelRun(context.WithoutCancel(ctx), env.scope, runID); err != nil {
				t.Error(err)
			}
		}
		start := time.Now()
		got, end := collectRunStream(t, readRunStream(t, env.url+runID+"/stream", env.scope))
		if len(got) != 0 || end != "run.finished" {
			t.Fatalf("stream of a run cancelled without its event = %+v, end %q", got, end)
		}
		if took := time.Since(start); took < 300*time.Millisecond {
			t.Fatalf("the stream ended after %v, before its first heartbeat: it read the run again at once", took)
		}
		if n := env.st.getRun.Load(); n != 1 {
			t.Fatalf("the stream read the run again %d times; want once, at the heartbeat", n)
		}
	})
}

// TestRunStreamOneReadPendingThenFinished: a pending run that runs to its end
// right after the stream's read, its events never published, still has all
// of them sent: the heartbeat reads the run finished, then the store.
func TestRunStreamOneReadPendingThenFinished(t *testing.T) {
	oneReadEnvsBeating(t, 200*time.Millisecond, func(t *testing.T, env oneReadEnv) {
		ctx := t.Context()
		const runID = "run_00000000-0000-0000-0000-0000000000d1"
		if _, _, err := env.stored.CreateRun(ctx, store.NewRun{Scope: env.scope, RunID: runID, MessageID: "m-d1", AgentID: "a1", Input: "go"}); err != nil {
			t.Fatal(err)
		}
		env.st.after = func() {
			ctx := context.WithoutCancel(ctx)
			if _, err := env.stored.ClaimNextRun(ctx, env.scope, "a1", "unused"); err != nil {
				t.Error(err)
				return
			}
			if _, err := env.stored.SaveStep(ctx, env.scope, runID, nil, []store.Event{{Type: "llm.called"}, {Type: "step.completed"}}); err != nil {
				t.Error(err)
			}
			if _, err := env.stored.FinishRun(ctx, env.scope, runID, store.RunResult{Status: store.RunCompleted, Output: "done"},
				[]store.Event{{Type: "run.completed"}}); err != nil {
				t.Error(err)
			}
		}
		got, end := collectRunStream(t, readRunStream(t, env.url+runID+"/stream", env.scope))
		wantRunStream(t, runPrevEnv{stored: env.stored, scope: env.scope}, runID, got, end)
	})
}

package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
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

// countingStore is the real store, counting the reads a stream makes.
type countingStore struct {
	httpapi.Store
	listEvents, getRun atomic.Int64
}

// ListEvents counts a read once it has read: waitFirstCatchUp must not
// return while the first read could still see the events stored after it.
func (s *countingStore) ListEvents(ctx context.Context, scope store.Scope, f store.EventFilter) ([]store.Event, int, error) {
	defer s.listEvents.Add(1)
	return s.Store.ListEvents(ctx, scope, f)
}

func (s *countingStore) GetRun(ctx context.Context, scope store.Scope, runID string) (store.Run, error) {
	s.getRun.Add(1)
	return s.Store.GetRun(ctx, scope, runID)
}

// sseFrame is one event of a stream: a stored or live event, or its end.
type sseFrame struct {
	id   int64
	typ  string
	end  string // the end event's reason
	data string
}

// readRunStream reads an SSE stream until it ends and sends its frames.
func readRunStream(t *testing.T, url string, scope store.Scope) <-chan sseFrame {
	t.Helper()
	resp := openStream(t, url, scope)
	frames := make(chan sseFrame, 1024)
	go func() {
		defer close(frames)
		defer func() { _ = resp.Body.Close() }()
		sc := bufio.NewScanner(resp.Body)
		var f sseFrame
		isEnd := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if isEnd || f.id != 0 || f.data != "" {
					frames <- f
				}
				f, isEnd = sseFrame{}, false
			case strings.HasPrefix(line, "id: "):
				f.id, _ = strconv.ParseInt(strings.TrimPrefix(line, "id: "), 10, 64)
			case line == "event: end":
				isEnd = true
			case strings.HasPrefix(line, "data: "):
				f.data = strings.TrimPrefix(line, "data: ")
				var v struct {
					Type   string `json:"type"`
					Reason string `json:"reason"`
				}
				_ = json.Unmarshal([]byte(f.data), &v)
				f.typ, f.end = v.Type, ""
				if isEnd {
					f.end = v.Reason
				}
			}
		}
	}()
	return frames
}

// collectRunStream reads frames until the stream's end and returns the
// events' frames and the end's reason.
func collectRunStream(t *testing.T, frames <-chan sseFrame) ([]sseFrame, string) {
	t.Helper()
	var got []sseFrame
	deadline := time.After(30 * time.Second)
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatalf("the stream closed without an end event after %d events", len(got))
			}
			if f.end != "" {
				return got, f.end
			}
			got = append(got, f)
		case <-deadline:
			t.Fatalf("the stream did not end; it sent %d events", len(got))
		}
	}
}

type runPrevEnv struct {
	st     *countingStore
	stored store.Store // the real one, for the test's own reads and writes
	pub    events.Bus  // what the writers publish on
	srv    *httptest.Server
	scope  store.Scope
}

// runPrevEnvs opens a server over a counting store: on SQLite with the
// memory bus, and on PostgreSQL with the writers publishing on another
// daemon's Redis bus than the server's, so RunPrev must cross Redis.
func runPrevEnvs(t *testing.T, fn func(t *testing.T, env runPrevEnv)) {
	for _, name := range []string{"sqlite", "postgres+redis"} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			var st interface {
				store.Store
				Close() error
			}
			var bus, pub events.Bus
			if name == "sqlite" {
				s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "oi.db"), slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				st = s
				bus = events.NewMemoryBus(0)
				pub = bus
			} else {
				s, err := postgres.Open(ctx, testenv.PostgresURL(t), slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				st = s
				prefix := testenv.RedisPrefix(t)
				for _, b := range []*events.Bus{&bus, &pub} {
					rb, err := events.NewRedisBus(ctx, testenv.RedisClient(t), prefix, slog.New(slog.DiscardHandler))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = rb.Close() })
					*b = rb
				}
			}
			t.Cleanup(func() { _ = st.Close() })
			scope := store.Scope{OrgID: "acme", UserID: "alice"}
			if _, err := st.CreateAgent(ctx, store.Agent{Scope: scope, ID: "a1", Name: "a1"}); err != nil {
				t.Fatal(err)
			}
			cs := &countingStore{Store: st}
			srv := httptest.NewServer(httpapi.New(httpapi.Deps{
				Store: cs, Bus: bus, Logger: slog.New(slog.DiscardHandler),
				Heartbeat: time.Hour, // only the live feed may tell the stream to read
			}).Handler())
			t.Cleanup(srv.Close)
			fn(t, runPrevEnv{st: cs, stored: st, pub: pub, srv: srv, scope: scope})
		})
	}
}

// startedRun creates a run of a1 and claims it: a running run, whose stream
// ends by its terminal event.
func startedRun(t *testing.T, env runPrevEnv) store.Run {
	t.Helper()
	ctx := t.Context()
	run, _, err := env.stored.CreateRun(ctx, store.NewRun{Scope: env.scope, RunID: "run_00000000-0000-0000-0000-000000000001", MessageID: "msg-1",
		AgentID: "a1", Input: "go"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := env.stored.ClaimNextRun(ctx, env.scope, "a1", "unused")
	if err != nil || c.Run.ID != run.ID {
		t.Fatalf("claim = %+v, %v", c.Run, err)
	}
	return c.Run
}

// waitFirstCatchUp waits until the stream has read the store once.
func waitFirstCatchUp(t *testing.T, st *countingStore) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); st.listEvents.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the stream never read the store")
		}
		time.Sleep(time.Millisecond)
	}
}

// wantRunStream checks that the stream sent the run's stored events, each
// once, in id order, and ended by the terminal one.
func wantRunStream(t *testing.T, env runPrevEnv, runID string, got []sseFrame, end string) {
	t.Helper()
	listed, _, err := env.stored.ListEvents(t.Context(), env.scope, store.EventFilter{RunID: runID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var want, gotIDs []int64
	for _, e := range listed {
		want = append(want, e.ID)
	}
	for _, f := range got {
		gotIDs = append(gotIDs, f.id)
	}
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("the stream sent ids %v, the run has %v", gotIDs, want)
	}
	// The payloads are what a read of the store sends.
	for i, e := range listed {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got[i].data != string(b) {
			t.Fatalf("event %d sent as\n %s\nstored as\n %s", e.ID, got[i].data, b)
		}
	}
	if end != "run.completed" {
		t.Fatalf("the stream ended with %q, want run.completed", end)
	}
}

// TestRunStreamForwardsInOrderEventsWithoutReads: once a run's stream has
// caught up, live events that follow the last one sent (RunPrev) are sent
// as they come: no store read until the run ends.
func TestRunStreamForwardsInOrderEventsWithoutReads(t *testing.T) {
	runPrevEnvs(t, func(t *testing.T, env runPrevEnv) {
		ctx := t.Context()
		run := startedRun(t, env)
		rec := events.Recorder{Bus: env.pub}
		frames := readRunStream(t, env.srv.URL+"/api/runs/"+run.ID+"/stream", env.scope)
		waitFirstCatchUp(t, env.st)

		for step := 1; step <= 20; step++ {
			batch := []store.Event{{Type: "llm.called"}, {Type: "tool.called"}, {Type: "step.completed"}}
			if _, err := rec.Stored(env.stored.SaveStep(ctx, env.scope, run.ID,
				&store.Checkpoint{Step: step, State: json.RawMessage(`{}`)}, batch[:1+step%3])); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := rec.Stored(env.stored.FinishRun(ctx, env.scope, run.ID,
			store.RunResult{Status: store.RunCompleted, Output: "done", Steps: 20},
			[]store.Event{{Type: "run.completed", Payload: json.RawMessage(`{"output":"done"}`)}})); err != nil {
			t.Fatal(err)
		}
		got, end := collectRunStream(t, frames)
		wantRunStream(t, env, run.ID, got, end)
		if n := env.st.listEvents.Load(); n != 1 {
			t.Fatalf("the stream read the run's events %d times; want once, its first catch-up", n)
		}
		if n := env.st.getRun.Load(); n != 1 {
			t.Fatalf("the stream read the run %d times; want once, before it opened", n)
		}
	})
}

// TestRunStreamFallsBackOnOutOfOrderEvents: a later batch delivered before
// an earlier one sends the stream to the store, and nothing is lost or sent
// twice.
func TestRunStreamFallsBackOnOutOfOrderEvents(t *testing.T) {
	runPrevEnvs(t, func(t *testing.T, env runPrevEnv) {
		ctx := t.Context()
		run := startedRun(t, env)
		frames := readRunStream(t, env.srv.URL+"/api/runs/"+run.ID+"/stream", env.scope)
		waitFirstCatchUp(t, env.st)

		first, err := env.stored.SaveStep(ctx, env.scope, run.ID, nil, []store.Event{{Type: "llm.called"}, {Type: "tool.called"}})
		if err != nil {
			t.Fatal(err)
		}
		second, err := env.stored.SaveStep(ctx, env.scope, run.ID, nil, []store.Event{{Type: "tool.result"}, {Type: "step.completed"}})
		if err != nil {
			t.Fatal(err)
		}
		if second[0].RunPrev != first[1].ID {
			t.Fatalf("second batch follows %d, want %d", second[0].RunPrev, first[1].ID)
		}
		env.pub.Publish(ctx, second...)
		env.pub.Publish(ctx, first...)
		third, err := env.stored.SaveStep(ctx, env.scope, run.ID, nil, []store.Event{{Type: "llm.called"}})
		if err != nil {
			t.Fatal(err)
		}
		last, err := env.stored.FinishRun(ctx, env.scope, run.ID, store.RunResult{Status: store.RunCompleted, Output: "done"},
			[]store.Event{{Type: "run.completed"}})
		if err != nil {
			t.Fatal(err)
		}
		// The terminal event before the one it follows: the stream must not end
		// before it has sent that one.
		env.pub.Publish(ctx, last...)
		env.pub.Publish(ctx, third...)

		got, end := collectRunStream(t, frames)
		wantRunStream(t, env, run.ID, got, end)
		if n := env.st.listEvents.Load(); n < 2 {
			t.Fatalf("the stream read the run's events %d times; an out-of-order batch must send it to the store", n)
		}
	})
}

// TestRunStreamOfPendingRunRereadsIt: a pending run can be cancelled without
// its terminal event stored with the status, so its stream reads the run
// again once subscribed, and ends when it finds it finished.
func TestRunStreamOfPendingRunRereadsIt(t *testing.T) {
	runPrevEnvs(t, func(t *testing.T, env runPrevEnv) {
		ctx := t.Context()
		run, _, err := env.stored.CreateRun(ctx, store.NewRun{Scope: env.scope, RunID: "run_00000000-0000-0000-0000-000000000002", MessageID: "msg-p",
			AgentID: "a1", Input: "go"})
		if err != nil {
			t.Fatal(err)
		}
		// Cancelled with no run.cancelled stored (as if its append failed), after
		// the stream read it pending: only the second read can end the stream.
		env.st.Store = &cancelOnGetRun{Store: env.st.Store, cancel: func() {
			if _, err := env.stored.CancelRun(context.WithoutCancel(ctx), env.scope, run.ID); err != nil {
				t.Error(err)
			}
		}}
		got, end := collectRunStream(t, readRunStream(t, env.srv.URL+"/api/runs/"+run.ID+"/stream", env.scope))
		if len(got) != 0 || end != "run.finished" {
			t.Fatalf("stream of a run cancelled without its event = %+v, end %q", got, end)
		}
		if n := env.st.getRun.Load(); n != 2 {
			t.Fatalf("the stream read the run %d times; want twice", n)
		}
	})
}

// cancelOnGetRun cancels the run right after the first read of it returns.
type cancelOnGetRun struct {
	httpapi.Store
	done   atomic.Bool
	cancel func()
}

func (s *cancelOnGetRun) GetRun(ctx context.Context, scope store.Scope, runID string) (store.Run, error) {
	r, err := s.Store.GetRun(ctx, scope, runID)
	if !s.done.Swap(true) {
		s.cancel()
	}
	return r, err
}

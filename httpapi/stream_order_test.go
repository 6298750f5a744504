package httpapi_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/httpapi"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
	"github.com/openintern/openintern/store/sqlite"
)

// streamStore is what the stream test needs of a store.
type streamStore interface {
	httpapi.Store
	Close() error
}

// TestStreamDeliversConcurrentWritersInOrder has several writers store and
// publish events of one agent at once, as workers of a group do, while one
// SSE client reads the agent's stream without ever reconnecting. The stream
// must be exactly the full replay, in id order: writers publish in whatever
// order they finish, and on PostgreSQL they also commit out of id order.
func TestStreamDeliversConcurrentWritersInOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		open  func(t *testing.T) streamStore
		redis bool
	}{
		{"sqlite", func(t *testing.T) streamStore {
			s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "oi.db"), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, false},
		{"postgres+redis", func(t *testing.T) streamStore {
			s, err := postgres.Open(t.Context(), testenv.PostgresURL(t), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			st := tc.open(t)
			t.Cleanup(func() { _ = st.Close() })
			var bus events.Bus = events.NewMemoryBus(0)
			if tc.redis {
				rb, err := events.NewRedisBus(ctx, testenv.RedisClient(t), testenv.RedisPrefix(t), slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = rb.Close() })
				bus = rb
			}
			scope := store.Scope{OrgID: "acme", UserID: "alice"}
			if _, err := st.CreateAgent(ctx, store.Agent{Scope: scope, ID: "a1", Name: "a1"}); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(httpapi.New(httpapi.Deps{
				Store: st, Bus: bus, Logger: slog.New(slog.DiscardHandler),
				Heartbeat: time.Hour, // only the live feed may tell the stream to read
			}).Handler())
			t.Cleanup(srv.Close)

			ids, streamErr := readStreamIDs(t, srv.URL+"/api/agents/a1/stream", scope)

			const writers, calls = 6, 80
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := 0; n < calls; n++ {
						batch := make([]store.Event, 1+rand.IntN(3))
						for i := range batch {
							batch[i] = store.Event{Scope: scope, AgentID: "a1", RunID: "r" + strconv.Itoa(w), Type: "step.completed"}
						}
						stored, err := st.AppendEvents(ctx, batch)
						if err != nil {
							t.Error(err)
							return
						}
						if rand.IntN(2) == 0 {
							runtime.Gosched() // let another writer publish first
						}
						bus.Publish(ctx, stored...)
					}
				}()
			}
			wg.Wait()
			last, err := st.AppendEvents(ctx, []store.Event{{Scope: scope, AgentID: "a1", Type: "done"}})
			if err != nil {
				t.Fatal(err)
			}
			bus.Publish(ctx, last...)

			var got []int64
			deadline := time.After(30 * time.Second)
			for len(got) == 0 || got[len(got)-1] < last[0].ID {
				select {
				case id := <-ids:
					got = append(got, id)
				case err := <-streamErr:
					t.Fatalf("stream ended: %v", err)
				case <-deadline:
					t.Fatalf("the stream sent %d ids and never reached the last event %d", len(got), last[0].ID)
				}
			}

			var want []int64
			for after := int64(0); ; {
				evs, _, err := st.ListEvents(ctx, scope, store.EventFilter{AgentID: "a1", AfterID: after, Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) == 0 {
					break
				}
				for _, e := range evs {
					want = append(want, e.ID)
				}
				after = evs[len(evs)-1].ID
			}
			if !slices.Equal(got, want) {
				missing := 0
				for _, id := range want {
					if !slices.Contains(got, id) {
						missing++
					}
				}
				t.Fatalf("the stream sent %d ids, the replay has %d (%d never sent; in order: %v)",
					len(got), len(want), missing, slices.IsSorted(got))
			}
			t.Logf("%d events from %d concurrent writers, all streamed in id order", len(want), writers)
		})
	}
}

// openStream opens an SSE stream as the scope's user; it is closed when the
// test ends.
func openStream(t *testing.T, url string, scope store.Scope) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp := sendGetAs(t, ctx, url, scope)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	return resp
}

// sendGetAs sends a GET of url as scope's user and returns the response
// unread.
func sendGetAs(t *testing.T, ctx context.Context, url string, scope store.Scope) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-org-id", scope.OrgID)
	req.Header.Set("x-user-id", scope.UserID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// readStreamIDs opens an SSE stream and sends the id of every event on ids;
// the stream's end or failure goes to the error channel.
func readStreamIDs(t *testing.T, url string, scope store.Scope) (<-chan int64, <-chan error) {
	t.Helper()
	resp := openStream(t, url, scope)
	ids := make(chan int64, 4096)
	errc := make(chan error, 1)
	opened := make(chan struct{})
	go func() {
		defer func() { _ = resp.Body.Close() }()
		sc := bufio.NewScanner(resp.Body)
		first := true
		for sc.Scan() {
			line := sc.Text()
			if first && strings.HasPrefix(line, ": stream open") {
				first = false
				close(opened)
			}
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				id, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					errc <- err
					return
				}
				ids <- id
			}
		}
		errc <- io.ErrUnexpectedEOF
	}()
	select {
	case <-opened:
	case err := <-errc:
		t.Fatalf("stream: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not open")
	}
	return ids, errc
}

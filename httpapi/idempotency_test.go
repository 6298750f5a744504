package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
)

// idemClock is the API's clock, moved without sleeping.
type idemClock struct{ ahead atomic.Int64 }

func (c *idemClock) now() time.Time      { return time.Now().Add(time.Duration(c.ahead.Load())) }
func (c *idemClock) add(d time.Duration) { c.ahead.Add(int64(d)) }

func idemHarness(t *testing.T, kind string) (*harness, *idemClock) {
	clock := &idemClock{}
	return newHarness(t, kind, func(d *Deps) { d.Now = clock.now }), clock
}

func countMessages(t *testing.T, h *harness, scope store.Scope) int {
	t.Helper()
	_, total, err := h.store.ListMessages(t.Context(), scope, store.MainAgentID, "", store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

var scopeO1U1 = store.Scope{OrgID: "o1", UserID: "u1"}

// TestIdempotencyConcurrentPosts: 100 identical concurrent POSTs of a
// message with one key queue one message; every other answer is a replay
// of the first or a 409 while it runs.
func TestIdempotencyConcurrentPosts(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h, _ := idemHarness(t, kind)
			const n = 100
			type answer struct {
				status   int
				replayed string
				body     []byte
				err      error
			}
			answers := make([]answer, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/api/agents/main/messages", strings.NewReader(`{"content":"once"}`))
					if err != nil {
						answers[i].err = err
						return
					}
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("x-org-id", "o1")
					req.Header.Set("x-user-id", "u1")
					req.Header.Set(IdempotencyKeyHeader, "send-once")
					resp, err := h.srv.Client().Do(req)
					if err != nil {
						answers[i].err = err
						return
					}
					defer func() { _ = resp.Body.Close() }()
					body, err := io.ReadAll(resp.Body)
					answers[i] = answer{resp.StatusCode, resp.Header.Get(IdempotentReplayedHeader), body, err}
				})
			}
			close(start)
			wg.Wait()
			var first []byte
			firsts, replays, inFlight := 0, 0, 0
			for _, a := range answers {
				switch {
				case a.err != nil:
					t.Fatal(a.err)
				case a.status == http.StatusAccepted && a.replayed == "":
					firsts++
					first = a.body
				case a.status == http.StatusAccepted && a.replayed == "true":
					replays++
				case a.status == http.StatusConflict && bytes.Contains(a.body, []byte(`"idempotency_key_in_flight"`)):
					inFlight++
				default:
					t.Fatalf("unexpected answer %d (replayed %q): %s", a.status, a.replayed, a.body)
				}
			}
			if firsts != 1 {
				t.Fatalf("%d requests ran, want 1 (%d replays, %d in flight)", firsts, replays, inFlight)
			}
			for _, a := range answers {
				if a.status == http.StatusAccepted && !bytes.Equal(a.body, first) {
					t.Fatalf("replay %s differs from the first answer %s", a.body, first)
				}
			}
			if got := countMessages(t, h, scopeO1U1); got != 1 {
				t.Fatalf("%d messages stored, want 1", got)
			}
			t.Logf("%s: 1 ran, %d replays, %d in flight", kind, replays, inFlight)
		})
	}
}

// TestIdempotencyReplayAndReuse: a replay is the first answer (status, body,
// content type) marked replayed; the key with another body or route is 422;
// another scope's key of the same name is its own; a 4xx answer is kept too;
// malformed keys are 400.
func TestIdempotencyReplayAndReuse(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h, _ := idemHarness(t, kind)
			key := map[string]string{IdempotencyKeyHeader: "k-1"}
			post := request{method: http.MethodPost, path: "/api/agents/main/messages", body: `{"content":"hello"}`, header: key}
			first := h.must(http.StatusAccepted, post)
			if first.header.Get(IdempotentReplayedHeader) != "" {
				t.Fatalf("first answer marked replayed")
			}
			again := h.must(http.StatusAccepted, post)
			if again.header.Get(IdempotentReplayedHeader) != "true" || !bytes.Equal(again.body, first.body) ||
				again.header.Get("Content-Type") != first.header.Get("Content-Type") {
				t.Fatalf("replay = %q %q %s, want the first answer %q %s marked replayed",
					again.header.Get(IdempotentReplayedHeader), again.header.Get("Content-Type"), again.body,
					first.header.Get("Content-Type"), first.body)
			}
			if got := countMessages(t, h, scopeO1U1); got != 1 {
				t.Fatalf("%d messages after a replay, want 1", got)
			}

			other := post
			other.body = `{"content":"hello again"}`
			h.wantError(http.StatusUnprocessableEntity, "idempotency_key_reused", other)
			h.wantError(http.StatusUnprocessableEntity, "idempotency_key_reused",
				request{method: http.MethodPost, path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`, header: key})
			if got := countMessages(t, h, scopeO1U1); got != 1 {
				t.Fatalf("%d messages after refused reuses, want 1", got)
			}

			u2 := post
			u2.header = map[string]string{IdempotencyKeyHeader: "k-1", "x-user-id": "u2"}
			if r := h.must(http.StatusAccepted, u2); r.header.Get(IdempotentReplayedHeader) != "" || bytes.Equal(r.body, first.body) {
				t.Fatalf("another scope's key replayed u1's answer: %s", r.body)
			}
			if got := countMessages(t, h, store.Scope{OrgID: "o1", UserID: "u2"}); got != 1 {
				t.Fatalf("u2 has %d messages, want 1", got)
			}

			missing := request{method: http.MethodPost, path: "/api/agents/nobody/messages", body: `{"content":"x"}`,
				header: map[string]string{IdempotencyKeyHeader: "k-404"}}
			h.wantError(http.StatusNotFound, "not_found", missing)
			if r := h.wantError(http.StatusNotFound, "not_found", missing); r.header.Get(IdempotentReplayedHeader) != "true" {
				t.Fatalf("a 404 is not replayed")
			}

			for _, bad := range []string{strings.Repeat("k", 256), "clé"} {
				bp := post
				bp.header = map[string]string{IdempotencyKeyHeader: bad}
				h.wantError(http.StatusBadRequest, "bad_idempotency_key", bp)
			}
			h.must(http.StatusAccepted, request{method: http.MethodPost, path: "/api/agents/main/messages", body: `{"content":"x"}`,
				header: map[string]string{IdempotencyKeyHeader: strings.Repeat("k", 255)}})
			// An empty key, or two, are refused too (the harness drops empty headers).
			for _, values := range [][]string{{""}, {"a", "b"}} {
				req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/api/agents/main/messages", strings.NewReader(`{"content":"x"}`))
				if err != nil {
					t.Fatal(err)
				}
				req.Header = http.Header{"Content-Type": {"application/json"}, "X-Org-Id": {"o1"}, "X-User-Id": {"u1"},
					IdempotencyKeyHeader: values}
				resp, err := h.srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte(`"bad_idempotency_key"`)) {
					t.Fatalf("key %q: %d %s, want 400 bad_idempotency_key", values, resp.StatusCode, body)
				}
			}
		})
	}
}

// TestIdempotencyExpiryAndLease: a key is in flight while its claim's lease
// lasts, can be taken over after it, and is accepted anew once it expired.
func TestIdempotencyExpiryAndLease(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h, clock := idemHarness(t, kind)
			post := request{method: http.MethodPost, path: "/api/agents/main/messages", body: `{"content":"hi"}`,
				header: map[string]string{IdempotencyKeyHeader: "k-exp"}}
			first := h.must(http.StatusAccepted, post)
			clock.add(store.IdempotencyTTL - time.Minute)
			if r := h.must(http.StatusAccepted, post); r.header.Get(IdempotentReplayedHeader) != "true" {
				t.Fatalf("not replayed a minute before expiry")
			}
			clock.add(time.Minute)
			r := h.must(http.StatusAccepted, post)
			if r.header.Get(IdempotentReplayedHeader) != "" || bytes.Equal(r.body, first.body) {
				t.Fatalf("an expired key replayed: %s", r.body)
			}
			if got := countMessages(t, h, scopeO1U1); got != 2 {
				t.Fatalf("%d messages, want 2", got)
			}

			// A request that died holding its claim: in flight for the lease, then taken over.
			is := h.api.deps.Idempotency
			req := httptest.NewRequest(http.MethodPost, "/api/agents/main/messages", nil)
			claim := store.IdempotencyClaim{Scope: scopeO1U1, Key: "k-dead", Token: "dead",
				Fingerprint: requestFingerprint(req, []byte(`{"content":"hi"}`)), Now: clock.now()}
			if res, err := is.ClaimIdempotencyKey(t.Context(), claim); err != nil || res.Outcome != store.IdempotencyClaimed {
				t.Fatalf("claim = %+v, %v", res, err)
			}
			dead := post
			dead.header = map[string]string{IdempotencyKeyHeader: "k-dead"}
			h.wantError(http.StatusConflict, "idempotency_key_in_flight", dead)
			clock.add(store.IdempotencyLease)
			if r := h.must(http.StatusAccepted, dead); r.header.Get(IdempotentReplayedHeader) != "" {
				t.Fatalf("a taken-over claim answered as a replay")
			}
			if got := countMessages(t, h, scopeO1U1); got != 3 {
				t.Fatalf("%d messages, want 3", got)
			}
		})
	}
}

// TestIdempotencyFailureReleasesKey: a POST that answers 5xx (here the
// message table is locked past the request deadline) leaves its key free,
// so the retry runs the request instead of replaying the failure.
func TestIdempotencyFailureReleasesKey(t *testing.T) {
	url := testenv.PostgresURL(t)
	h := newHarnessURL(t, url, func(d *Deps) { d.RequestTimeout = 500 * time.Millisecond })
	post := request{method: http.MethodPost, path: "/api/agents/main/messages", body: `{"content":"retry me"}`,
		header: map[string]string{IdempotencyKeyHeader: "k-5xx"}}
	h.must(http.StatusOK, request{method: http.MethodGet, path: "/api/agents/main"})

	unlock := lockTable(t, url, "messages")
	if r := h.do(post); r.status < 500 {
		t.Fatalf("POST on a locked table: %d %s, want a 5xx", r.status, r.body)
	}
	unlock()
	r := h.must(http.StatusAccepted, post)
	if r.header.Get(IdempotentReplayedHeader) != "" {
		t.Fatalf("the retry after a 5xx was a replay")
	}
	if got := countMessages(t, h, scopeO1U1); got != 1 {
		t.Fatalf("%d messages, want 1", got)
	}
}

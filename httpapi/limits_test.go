package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

// fakeClock is a clock the test moves, so that bucket refills need no sleep.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestRateLimit: a caller gets its burst, then 429 rate_limited with the
// Retry-After its bucket needs, and requests again once it has refilled.
func TestRateLimit(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			clock := newFakeClock()
			h := newHarness(t, kind, func(d *Deps) {
				d.Now = clock.now
				d.RateLimit = RateLimit{RPS: 0.25, Burst: 3, Loopback: true}
			})
			list := request{method: "GET", path: "/api/agents"}
			for range 3 {
				h.must(http.StatusOK, list)
			}
			r := h.wantError(http.StatusTooManyRequests, "rate_limited", list)
			// One token every 4 s: the reservation's delay, rounded up.
			if got := r.header.Get("Retry-After"); got != "4" {
				t.Fatalf("Retry-After = %q, want 4", got)
			}
			// A refused request takes no token: after 4 s exactly one passes.
			clock.advance(4 * time.Second)
			h.must(http.StatusOK, list)
			h.wantError(http.StatusTooManyRequests, "rate_limited", list)
			// Writes and other scopes share the caller's bucket: it is the
			// caller (token, else address) that is limited, not the scope.
			clock.advance(1 * time.Second)
			r = h.wantError(http.StatusTooManyRequests, "rate_limited", request{method: "POST", path: "/api/agents",
				body: `{"agent_id":"a1","name":"a"}`, header: map[string]string{"x-org-id": "o2"}})
			if got := r.header.Get("Retry-After"); got != "3" {
				t.Fatalf("Retry-After = %q, want 3", got)
			}
			// A full refill restores the whole burst.
			clock.advance(time.Minute)
			for range 3 {
				h.must(http.StatusOK, list)
			}
			h.wantError(http.StatusTooManyRequests, "rate_limited", list)
		})
	}
}

// TestRateLimitPerToken: each token has its own bucket, on loopback too,
// and a stream takes one request from it when it opens, however long it lasts.
func TestRateLimitPerToken(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			clock := newFakeClock()
			h := newHarness(t, kind, withAuth, func(d *Deps) {
				d.Now = clock.now
				d.RateLimit = RateLimit{RPS: 0.25, Burst: 2}
			})
			scope := store.Scope{OrgID: "o1", UserID: "u1"}
			_, admin := h.issue(scope, auth.RoleAdmin, nil)
			_, viewer := h.issue(scope, auth.RoleViewer, nil)
			h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"a"}`, header: bearer(admin)})
			h.must(http.StatusOK, request{method: "GET", path: "/api/agents", header: bearer(admin)})
			r := h.wantError(http.StatusTooManyRequests, "rate_limited", request{method: "GET", path: "/api/agents", header: bearer(admin)})
			if r.header.Get("Retry-After") != "4" {
				t.Fatalf("Retry-After = %q, want 4", r.header.Get("Retry-After"))
			}
			// Another token of the same scope and address has its own bucket.
			status, body, _, closeStream := openStreamWith(t, h, "a1", bearer(viewer))
			if status != http.StatusOK {
				t.Fatalf("stream: %d %s", status, body)
			}
			defer closeStream()
			h.must(http.StatusOK, request{method: "GET", path: "/api/agents", header: bearer(viewer)})
			h.wantError(http.StatusTooManyRequests, "rate_limited", request{method: "GET", path: "/api/agents", header: bearer(viewer)})
			// A token the limiter never saw is refused by authentication
			// first, and takes nothing from anyone's bucket.
			h.wantError(http.StatusUnauthorized, "", request{method: "GET", path: "/api/agents", header: bearer("oi_nonsense")})
			clock.advance(4 * time.Second)
			h.must(http.StatusOK, request{method: "GET", path: "/api/agents", header: bearer(admin)})
		})
	}
}

// TestRateLimitSparesLoopbackWithoutToken: by default (the daemon's setting)
// a caller on loopback without a token is the machine's own user and is not
// limited; /healthz is never limited.
func TestRateLimitSparesLoopbackWithoutToken(t *testing.T) {
	h := newHarness(t, "sqlite", func(d *Deps) { d.RateLimit = RateLimit{RPS: 0.001, Burst: 1} })
	for range 5 {
		h.must(http.StatusOK, request{method: "GET", path: "/api/agents"})
	}
	if h.api.limiter.size() != 0 {
		t.Fatalf("%d buckets kept for loopback callers", h.api.limiter.size())
	}
}

// TestRateLimiterEvictsIdleBuckets: a bucket idle for a full refill is
// dropped at the next sweep, so memory follows the recent callers only.
func TestRateLimiterEvictsIdleBuckets(t *testing.T) {
	clock := newFakeClock()
	rl := newRateLimiter(RateLimit{RPS: 10, Burst: 20}, clock.now) // refill: 2 s
	for i := range 1000 {
		if d := rl.reserve(fmt.Sprintf("ip:10.0.%d.%d", i/256, i%256)); d != 0 {
			t.Fatalf("caller %d limited on its first request (%v)", i, d)
		}
	}
	if rl.size() != 1000 {
		t.Fatalf("%d buckets, want 1000", rl.size())
	}
	clock.advance(time.Second)
	rl.reserve("ip:10.9.9.9") // a sweep now keeps the buckets used 1 s ago
	if rl.size() != 1001 {
		t.Fatalf("%d buckets after 1 s, want 1001 (none idle for a refill yet)", rl.size())
	}
	clock.advance(2 * time.Second)
	rl.reserve("ip:10.9.9.8")
	if rl.size() != 1 {
		t.Fatalf("%d buckets after every other caller was idle for a refill, want 1", rl.size())
	}
	// A caller that comes back starts with a full bucket, as it would have
	// had anyway.
	for i := range 20 {
		if d := rl.reserve("ip:10.0.0.0"); d != 0 {
			t.Fatalf("request %d of a returning caller limited", i)
		}
	}
	if d := rl.reserve("ip:10.0.0.0"); d <= 0 {
		t.Fatal("a 21st request within the burst passed")
	}
}

// openStream opens an SSE stream and waits for its first line; the stream
// stays open until the returned close is called. status is the answer's.
func openStream(t *testing.T, h *harness, scope store.Scope, agentID string) (status int, body string, retryAfter string, closeFn func()) {
	t.Helper()
	return openStreamWith(t, h, agentID, map[string]string{"x-org-id": scope.OrgID, "x-user-id": scope.UserID})
}

func openStreamWith(t *testing.T, h *harness, agentID string, header map[string]string) (status int, body string, retryAfter string, closeFn func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/api/agents/"+agentID+"/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		_ = resp.Body.Close()
		cancel()
		return resp.StatusCode, b.String(), resp.Header.Get("Retry-After"), func() {}
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, ": stream open") {
		t.Fatalf("stream's first line %q, %v", line, err)
	}
	return resp.StatusCode, "", "", func() { cancel(); _ = resp.Body.Close() }
}

// waitStreams waits until the server counts want streams open in all.
func waitStreams(t *testing.T, h *harness, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if total, _ := h.api.streams.counts(store.Scope{}); total == want {
			return
		}
		if time.Now().After(deadline) {
			total, _ := h.api.streams.counts(store.Scope{})
			t.Fatalf("%d streams open, want %d", total, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStreamCaps: over its scope's cap, or the daemon's, a stream is refused
// at once with 429 too_many_streams; closing one frees its place; one
// scope's streams do not use up another's.
func TestStreamCaps(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind, func(d *Deps) { d.MaxStreamsPerScope = 2; d.MaxStreams = 3 })
			a := store.Scope{OrgID: "o1", UserID: "u1"}
			b := store.Scope{OrgID: "o2", UserID: "u1"}
			c := store.Scope{OrgID: "o3", UserID: "u1"}
			for _, sc := range []store.Scope{a, b, c} {
				h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"a"}`,
					header: map[string]string{"x-org-id": sc.OrgID}})
			}
			_, _, _, closeA1 := openStream(t, h, a, "a1")
			_, _, _, closeA2 := openStream(t, h, a, "a1")
			defer closeA2()
			status, body, retry, _ := openStream(t, h, a, "a1")
			if status != http.StatusTooManyRequests || !strings.Contains(body, `"too_many_streams"`) || retry == "" {
				t.Fatalf("third stream of a scope with a cap of 2: %d %s (Retry-After %q)", status, body, retry)
			}
			// Another scope is not held back by this one's cap.
			_, _, _, closeB := openStream(t, h, b, "a1")
			defer closeB()
			// The daemon's cap (3) is reached: a third scope is refused too.
			status, body, _, _ = openStream(t, h, c, "a1")
			if status != http.StatusTooManyRequests || !strings.Contains(body, "OPENINTERN_MAX_STREAMS)") {
				t.Fatalf("stream over the daemon's cap: %d %s", status, body)
			}
			// Closing one gives its place back.
			closeA1()
			waitStreams(t, h, 2)
			_, _, _, closeA3 := openStream(t, h, a, "a1")
			defer closeA3()
			if _, ofA := h.api.streams.counts(a); ofA != 2 {
				t.Fatalf("scope a has %d streams counted, want 2", ofA)
			}
			// A stream refused for a missing agent or a bad cursor is released too.
			h.wantError(http.StatusNotFound, "", request{method: "GET", path: "/api/agents/nobody/stream", header: map[string]string{"x-org-id": "o3"}})
			closeA2()
			waitStreams(t, h, 2)
			h.wantError(http.StatusBadRequest, "invalid_cursor", request{method: "GET", path: "/api/agents/a1/stream",
				header: map[string]string{"Last-Event-ID": "x"}})
			waitStreams(t, h, 2)
		})
	}
}

// TestQuotasThroughTheAPI: creating an agent or writing memory over the
// scope's quota is 409 quota_exceeded naming the quota and the usage, on
// every path that writes (JSON, file upload); other scopes are unaffected;
// two creates racing for the last place: exactly one wins.
func TestQuotasThroughTheAPI(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			qs, ok := h.store.(store.QuotaSetter)
			if !ok {
				t.Fatalf("%T sets no quotas", h.store)
			}
			qs.SetQuotas(store.Quotas{AgentsPerScope: 2, MemoryBytesPerScope: 100})
			agent := func(id string, org string) request {
				return request{method: "POST", path: "/api/agents", body: `{"agent_id":"` + id + `","name":"n"}`,
					header: map[string]string{"x-org-id": org}}
			}
			h.must(http.StatusCreated, agent("a1", "o1"))
			// Two creates racing for the last place.
			var wg sync.WaitGroup
			statuses := make([]int, 2)
			for i := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					statuses[i] = h.do(agent(fmt.Sprintf("r%d", i), "o1")).status
				}()
			}
			wg.Wait()
			if !(statuses[0] == http.StatusCreated) != (statuses[1] == http.StatusCreated) || statuses[0]+statuses[1] != http.StatusCreated+http.StatusConflict {
				t.Fatalf("two creates at quota-1: %v, want one 201 and one 409", statuses)
			}
			r := h.wantError(http.StatusConflict, "quota_exceeded", agent("a3", "o1"))
			if msg := string(r.body); !strings.Contains(msg, "2 agents") || !strings.Contains(msg, "OPENINTERN_MAX_AGENTS_PER_SCOPE") {
				t.Fatalf("quota message does not name the usage and the setting: %s", msg)
			}
			h.must(http.StatusCreated, agent("a1", "o2"))
			h.must(http.StatusNoContent, request{method: "DELETE", path: "/api/agents/a1"})
			h.must(http.StatusCreated, agent("a3", "o1"))

			mem := func(text, org string) request {
				return request{method: "POST", path: "/api/memories", body: `{"text":"` + text + `"}`, header: map[string]string{"x-org-id": org}}
			}
			h.must(http.StatusCreated, mem(strings.Repeat("m", 80), "o1"))
			r = h.wantError(http.StatusConflict, "quota_exceeded", mem(strings.Repeat("n", 30), "o1"))
			if msg := string(r.body); !strings.Contains(msg, "80 B") || !strings.Contains(msg, "100 B") || !strings.Contains(msg, "30 B") {
				t.Fatalf("memory quota message does not name the usage: %s", msg)
			}
			var form bytes.Buffer
			mw := multipart.NewWriter(&form)
			fw, _ := mw.CreateFormFile("file", "notes.md")
			_, _ = fw.Write([]byte(strings.Repeat("remember this ", 3)))
			_ = mw.Close()
			h.wantError(http.StatusConflict, "quota_exceeded", request{method: "POST", path: "/api/memories/ingest", body: form.String(),
				header: map[string]string{"Content-Type": mw.FormDataContentType()}})
			h.must(http.StatusCreated, mem(strings.Repeat("n", 30), "o2"))
		})
	}
}

// BenchmarkRateLimit is the middleware's cost per request: "off" is the
// route alone, "on" adds a bucket lookup and reservation (one caller, never
// limited), "callers" spreads requests over 10,000 callers in parallel.
func BenchmarkRateLimit(b *testing.B) {
	ginModeOnce.Do(func() { gin.SetMode(gin.ReleaseMode) })
	addrs := make([]string, 10000)
	for n := range addrs {
		addrs[n] = fmt.Sprintf("10.%d.%d.%d:1234", n>>16&255, n>>8&255, n&255)
	}
	run := func(b *testing.B, rl RateLimit, callers int) {
		s := &Server{deps: Deps{RateLimit: rl}}
		if rl.RPS > 0 {
			s.limiter = newRateLimiter(rl, time.Now)
		}
		e := gin.New()
		e.GET("/x", s.rateLimit, func(c *gin.Context) { c.Status(http.StatusNoContent) })
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			w := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/x", nil)
			for pb.Next() {
				req.RemoteAddr = addrs[next.Add(1)%int64(callers)]
				e.ServeHTTP(w, req)
				if w.Code != http.StatusNoContent && w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
	b.Run("off", func(b *testing.B) { run(b, RateLimit{}, 1) })
	b.Run("on", func(b *testing.B) { run(b, RateLimit{RPS: 1e9, Burst: 1 << 30}, 1) })
	b.Run("callers", func(b *testing.B) { run(b, RateLimit{RPS: 1e9, Burst: 1 << 30}, 10000) })
}

// TestFailedCredentialsLimited: an address that presents unknown tokens gets
// its burst of 401s, then 429 too_many_failures before any credential is
// looked up (a right token from there waits too, or a guess could be told
// apart), on the API and at sign-in alike; it may try again once a token has
// refilled. Another address's callers, and loopback without the Loopback
// setting, are not held back.
func TestFailedCredentialsLimited(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			clock := newFakeClock()
			h := newHarness(t, kind, withAuth, func(d *Deps) {
				d.Now = clock.now
				d.RateLimit = RateLimit{Loopback: true} // the test's connections are loopback
			})
			_, good := h.issue(store.Scope{OrgID: "o1", UserID: "u1"}, auth.RoleAdmin, nil)
			list := func(secret string) request {
				return request{method: "GET", path: "/api/agents", header: bearer(secret)}
			}
			for i := range failedCredentialBurst {
				h.wantError(http.StatusUnauthorized, "invalid_token", list(fmt.Sprintf("oit_guess%d", i)))
			}
			r := h.wantError(http.StatusTooManyRequests, "too_many_failures", list("oit_guess-next"))
			if got := r.header.Get("Retry-After"); got != "6" {
				t.Fatalf("Retry-After = %q, want 6", got)
			}
			h.wantError(http.StatusTooManyRequests, "too_many_failures", list(good))
			h.wantError(http.StatusTooManyRequests, "too_many_failures",
				request{method: "POST", path: "/api/auth/login", body: `{"token":"oit_guess-login"}`})
			// A request without a credential is not a guess: it is told to authenticate.
			h.wantError(http.StatusUnauthorized, "unauthenticated", request{method: "GET", path: "/api/agents"})

			// One refilled token: one more guess, judged; then held back again.
			clock.advance(failedCredentialRefill)
			h.must(http.StatusOK, list(good))
			h.wantError(http.StatusUnauthorized, "invalid_token",
				request{method: "POST", path: "/api/auth/login", body: `{"token":"oit_guess-login"}`})
			h.wantError(http.StatusTooManyRequests, "too_many_failures", list(good))
			clock.advance(time.Minute)
			h.must(http.StatusOK, list(good))
		})
	}
	// Loopback callers are the machine's own unless RateLimit.Loopback is set.
	h := newHarness(t, "sqlite", withAuth)
	for i := range failedCredentialBurst + 5 {
		h.wantError(http.StatusUnauthorized, "invalid_token", request{method: "GET", path: "/api/agents", header: bearer(fmt.Sprintf("oit_guess%d", i))})
	}
}

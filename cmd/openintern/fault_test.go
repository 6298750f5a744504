package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
)

// faultLoad sends messages to a daemon from a few workers until stopped and
// records every answer, so a test can fault the daemon's database or Redis
// under it and check what the clients saw.
type faultLoad struct {
	base   string
	scope  store.Scope
	client *http.Client

	mu       sync.Mutex
	phase    string
	codes    map[string]map[int]int // phase -> status -> count (0: no answer)
	problems []string               // 500s, 503s without Retry-After, transport errors
	accepted map[string]string      // message id -> agent
	lastOK   time.Time              // the last 2xx answer
	answered atomic.Int64           // requests answered, any status
	stop     chan struct{}
	wg       sync.WaitGroup
}

// faultRequestTimeout: a request not answered in this time counts as a hang.
const faultRequestTimeout = 10 * time.Second

func startFaultLoad(t *testing.T, base string, scope store.Scope, agents []string) *faultLoad {
	l := &faultLoad{
		base: base, scope: scope, client: &http.Client{Timeout: faultRequestTimeout},
		phase: "warm-up", codes: map[string]map[int]int{}, accepted: map[string]string{}, stop: make(chan struct{}),
	}
	for w, agent := range agents {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				l.post(agent, fmt.Sprintf("w%d-m%05d", w, i))
				if w == 0 {
					l.get("/api/agents/" + agent)
				}
				// Pace the load: two cores are shared with other tests.
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	t.Cleanup(l.halt)
	return l
}

func (l *faultLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *faultLoad) setPhase(p string) {
	l.mu.Lock()
	l.phase = p
	l.mu.Unlock()
}

func (l *faultLoad) do(method, path, body string) (int, http.Header, []byte) {
	req, _ := http.NewRequest(method, l.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-org-id", l.scope.OrgID)
	req.Header.Set("x-user-id", l.scope.UserID)
	resp, err := l.client.Do(req)
	l.answered.Add(1)
	if err != nil {
		l.record(0, nil, method+" "+path+": "+err.Error())
		return 0, nil, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	l.record(resp.StatusCode, resp.Header, method+" "+path+": "+string(raw))
	return resp.StatusCode, resp.Header, raw
}

func (l *faultLoad) record(status int, h http.Header, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.codes[l.phase] == nil {
		l.codes[l.phase] = map[int]int{}
	}
	l.codes[l.phase][status]++
	switch {
	case status == 0 || status >= 500 && status != http.StatusServiceUnavailable:
		l.problems = append(l.problems, fmt.Sprintf("%s: status %d: %s", l.phase, status, what))
	case status == http.StatusServiceUnavailable && h.Get("Retry-After") == "":
		l.problems = append(l.problems, fmt.Sprintf("%s: 503 without Retry-After: %s", l.phase, what))
	case status < 300:
		l.lastOK = time.Now()
	}
}

func (l *faultLoad) post(agent, content string) {
	status, _, raw := l.do("POST", "/api/agents/"+agent+"/messages", fmt.Sprintf(`{"content":%q,"session_key":"s"}`, content))
	if status != http.StatusAccepted {
		return
	}
	var r struct {
		MessageID string `json:"message_id"`
	}
	_ = json.Unmarshal(raw, &r)
	l.mu.Lock()
	l.accepted[r.MessageID] = agent
	l.mu.Unlock()
}

func (l *faultLoad) get(path string) { l.do("GET", path, "") }

func (l *faultLoad) acceptedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

func (l *faultLoad) lastSuccess() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastOK
}

// TestStoreFaults restarts the daemon's PostgreSQL, then stops its Redis for
// ten seconds, under a steady load of messages. While the database is down
// the daemon answers 503 with Retry-After (never a 500, never a hang); it
// recovers by itself within seconds of the database coming back; Redis being
// down costs no request at all; and every message the daemon accepted (2xx)
// is eventually read, by exactly one run. Both servers are the test's own:
// the shared ones serve other tests meanwhile.
func TestStoreFaults(t *testing.T) {
	pg := testenv.StartPostgres(t)
	rd := testenv.StartRedis(t)
	cfg := newConfig(t, "sqlite")
	cfg.DatabaseURL = pg.URL()
	cfg.RedisURL = rd.URL()
	d := startMain(t, &daemon.Main{Config: cfg, Logger: testLogger(t), Model: instantModel{}})
	scope := store.Scope{OrgID: "faults", UserID: "u1"}
	agents := []string{"a0", "a1", "a2", "a3"}
	for _, a := range agents {
		status, body := rawRequest(d.URL(), scope, "POST", "/api/agents", fmt.Sprintf(`{"agent_id":%q,"name":%q}`, a, a))
		if status != http.StatusCreated {
			t.Fatalf("create agent: %d %s", status, body)
		}
	}
	load := startFaultLoad(t, d.URL(), scope, agents)
	waitFor(t, 30*time.Second, "warm-up", func() bool { return load.acceptedCount() >= 40 })

	// PostgreSQL restart: down for a few seconds, as a real restart is, and
	// until the clients have seen plenty of answers.
	load.setPhase("postgres down")
	pg.Stop()
	downAt := time.Now()
	answered := load.answered.Load()
	waitFor(t, 60*time.Second, "requests during the database outage", func() bool {
		return load.answered.Load() >= answered+40 && time.Since(downAt) >= 3*time.Second
	})
	pg.Start()
	load.setPhase("postgres back")
	upAt := time.Now()
	t.Logf("PostgreSQL down for %s", upAt.Sub(downAt).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "recovery after PostgreSQL came back", func() bool { return load.lastSuccess().After(upAt) })
	recovered := load.lastSuccess().Sub(upAt)
	t.Logf("first 2xx %s after PostgreSQL accepted connections again", recovered.Round(time.Millisecond))
	before := load.acceptedCount()
	waitFor(t, 30*time.Second, "messages accepted after recovery", func() bool { return load.acceptedCount() >= before+40 })

	// Redis down for ten seconds: the store is the source of truth, so
	// requests go on being answered and runs go on completing at about the
	// same rate (a publish to Redis is best effort and bounded).
	completed := func() int {
		var runs struct{ Total int }
		status, body := rawRequest(d.URL(), scope, "GET", "/api/runs?status=completed&limit=1", "")
		if status != http.StatusOK || json.Unmarshal(body, &runs) != nil {
			t.Fatalf("count runs: %d %s", status, body)
		}
		return runs.Total
	}
	// The agents whose turns failed meanwhile retry after their error
	// backoff (at most OPENINTERN's ErrorBackoffMax, 30 s).
	runsAtUp := completed()
	waitFor(t, 40*time.Second, "runs completing after PostgreSQL came back", func() bool { return completed() > runsAtUp })
	t.Logf("runs complete again %s after PostgreSQL came back", time.Since(upAt).Round(time.Millisecond))
	baseStart, baseRuns := time.Now(), completed()
	time.Sleep(3 * time.Second) // a window to measure the rate in, not a wait for an event
	baseRate := float64(completed()-baseRuns) / time.Since(baseStart).Seconds()
	load.setPhase("redis down")
	rd.Stop()
	redisDownAt, downRuns := time.Now(), completed()
	before = load.acceptedCount()
	time.Sleep(10 * time.Second) // the length of the outage, not a wait for an event
	downRate := float64(completed()-downRuns) / time.Since(redisDownAt).Seconds()
	rd.Start()
	t.Logf("Redis down for %s: %d messages accepted meanwhile; runs completed %.1f/s (%.1f/s before)",
		time.Since(redisDownAt).Round(time.Millisecond), load.acceptedCount()-before, downRate, baseRate)
	if downRate < baseRate/4 {
		t.Errorf("runs completed %.1f/s with Redis down, %.1f/s before: Redis slows the turns", downRate, baseRate)
	}
	load.setPhase("redis back")
	before = load.acceptedCount()
	waitFor(t, 30*time.Second, "messages accepted after Redis came back", func() bool { return load.acceptedCount() >= before+20 })
	load.halt()

	load.mu.Lock()
	phases := make([]string, 0, len(load.codes))
	for p := range load.codes {
		phases = append(phases, p)
	}
	sort.Strings(phases)
	for _, p := range phases {
		t.Logf("%-14s status codes %v", p, load.codes[p])
	}
	problems := load.problems
	downCodes := load.codes["postgres down"]
	redisCodes := load.codes["redis down"]
	accepted := load.accepted
	load.mu.Unlock()
	for i, p := range problems {
		if i == 20 {
			t.Errorf("... and %d more", len(problems)-i)
			break
		}
		t.Errorf("%s", p)
	}
	if downCodes[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no 503 while PostgreSQL was down: %v", downCodes)
	}
	if recovered > 10*time.Second {
		t.Errorf("recovered %s after PostgreSQL came back, want within 10s", recovered)
	}
	for status, n := range redisCodes {
		if status >= 300 {
			t.Errorf("%d answers %d while Redis was down; Redis is not needed to answer", n, status)
		}
	}

	// Every accepted message is read, by exactly one run, in the end.
	waitFor(t, 90*time.Second, "inboxes drained", func() bool {
		for _, a := range agents {
			var ag store.Agent
			status, body := rawRequest(d.URL(), scope, "GET", "/api/agents/"+a, "")
			if status != http.StatusOK || json.Unmarshal(body, &ag) != nil || ag.Unread != 0 {
				return false
			}
		}
		return true
	})
	read := map[string]string{} // message id -> run id
	for _, a := range agents {
		for page := 1; ; page++ {
			var msgs struct {
				Messages []store.Message `json:"messages"`
				Total    int             `json:"total"`
			}
			status, body := rawRequest(d.URL(), scope, "GET", fmt.Sprintf("/api/agents/%s/messages?limit=200&page=%d", a, page), "")
			if status != http.StatusOK || json.Unmarshal(body, &msgs) != nil {
				t.Fatalf("list messages: %d %s", status, body)
			}
			for _, m := range msgs.Messages {
				if _, dup := read[m.ID]; dup {
					t.Fatalf("message %s listed twice", m.ID)
				}
				if m.Status != store.MessageRead || m.RunID == "" {
					t.Fatalf("message %s: status %s, run %q", m.ID, m.Status, m.RunID)
				}
				read[m.ID] = m.RunID
			}
			if page*200 >= msgs.Total {
				break
			}
		}
	}
	lost := 0
	for id := range accepted {
		if _, ok := read[id]; !ok {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d accepted messages were never read", lost, len(accepted))
	}
	runs := map[string]bool{}
	for _, r := range read {
		runs[r] = true
	}
	for r := range runs {
		var run store.Run
		status, body := rawRequest(d.URL(), scope, "GET", "/api/runs/"+r, "")
		if status != http.StatusOK || json.Unmarshal(body, &run) != nil {
			t.Fatalf("get run %s: %d %s", r, status, body)
		}
		if !store.RunFinished(run.Status) {
			t.Errorf("run %s is %s", r, run.Status)
		}
	}
	t.Logf("%d messages accepted, %d stored (some answered 503 may have been committed), all read by %d runs",
		len(accepted), len(read), len(runs))
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
)

// tenantModel answers at once with text and records which tenant each call
// was for: the input starts with the tenant's letter and a colon. Calls for
// tenant A wait while the gate is closed, so a test can fill A's backlog with
// every slot busy before anything of it runs.
type tenantModel struct {
	mu     sync.Mutex
	calls  []string // the tenant of each call, in the order they came
	gate   chan struct{}
	opened sync.Once
}

func newTenantModel(gated bool) *tenantModel {
	m := &tenantModel{gate: make(chan struct{})}
	if !gated {
		m.open()
	}
	return m
}

func (m *tenantModel) open() { m.opened.Do(func() { close(m.gate) }) }

func (*tenantModel) Name() string { return "tenants" }

func (m *tenantModel) Complete(ctx context.Context, req llm.Request, _ llm.TokenFunc) (llm.Response, error) {
	tenant := ""
	for _, msg := range slices.Backward(req.Messages) {
		if msg.Role == llm.RoleUser {
			tenant, _, _ = strings.Cut(msg.Content, ":")
			break
		}
	}
	m.mu.Lock()
	m.calls = append(m.calls, tenant)
	m.mu.Unlock()
	if tenant == "A" {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return llm.Response{}, ctx.Err()
		}
	}
	return llm.Response{Content: "ok", FinishReason: "stop", Usage: llm.Usage{TotalTokens: 1}}, nil
}

// count returns how many calls have come for the tenant.
func (m *tenantModel) count(tenant string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.calls {
		if c == tenant {
			n++
		}
	}
	return n
}

// callsBefore returns how many calls came for tenant before the first for other.
func (m *tenantModel) callsBefore(tenant, other string) (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.calls {
		switch c {
		case other:
			return n, true
		case tenant:
			n++
		}
	}
	return n, false
}

var (
	tenantA = store.Scope{OrgID: "tenant-a", UserID: "u"}
	tenantB = store.Scope{OrgID: "tenant-b", UserID: "u"}
)

// fairAgents is how many agents tenant A floods.
const fairAgents = 200

func fairAgentID(i int) string { return fmt.Sprintf("a%03d", i) }

func createTenantAgents(tb testing.TB, base string) {
	tb.Helper()
	for i := range fairAgents {
		if status, body := rawRequest(base, tenantA, "POST", "/api/agents", fmt.Sprintf(`{"agent_id":%q,"name":"a"}`, fairAgentID(i))); status != http.StatusCreated {
			tb.Fatalf("create agent: %d %s", status, body)
		}
	}
	if status, body := rawRequest(base, tenantB, "POST", "/api/agents", `{"agent_id":"b","name":"b"}`); status != http.StatusCreated {
		tb.Fatalf("create agent: %d %s", status, body)
	}
}

// postBacklog sends tenant A n messages spread over its agents, each in a
// session of its own so each is a run of its own. first numbers the first.
func postBacklog(tb testing.TB, base string, first, n int) {
	tb.Helper()
	var wg sync.WaitGroup
	const senders = 64 // many at once, so they share the store's group commits
	errs := make(chan string, senders)
	for w := range senders {
		wg.Go(func() {
			for i := first + w; i < first+n; i += senders {
				body := fmt.Sprintf(`{"content":"A: work %d","session_key":"s%d"}`, i, i)
				if status, out := rawRequest(base, tenantA, "POST", "/api/agents/"+fairAgentID(i%fairAgents)+"/messages", body); status != http.StatusAccepted {
					errs <- fmt.Sprintf("post: %d %s", status, out)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		tb.Fatal(e)
	}
}

func waitStats(tb testing.TB, d *testDaemon, what string, cond func(running, waiting int) bool) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := d.Runtime.Stats(context.Background())
		if err == nil && cond(st.RunningAgents, st.WaitingAgents) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s: stats %+v, %v", what, st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Tenant A floods its 200 agents and holds every slot; tenant B's one message
// then runs after at most a few of A's turns, not after A's backlog. The test
// counts turns (the order of the model's calls), not time.
func TestFairShareBetweenTenants(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { testFairShare(t, kind) })
	}
}

func testFairShare(t *testing.T, kind string) {
	const maxRunning = 4
	cfg := newConfig(t, kind)
	cfg.MaxRunningAgents = maxRunning
	cfg.MemoryRecall = false
	model := newTenantModel(true)
	t.Cleanup(model.open) // a failed test must not leave calls held at shutdown
	d := startDaemon(t, cfg, model)
	createTenantAgents(t, d.URL())
	// Two messages an agent: each agent asks for a slot again after its first run.
	postBacklog(t, d.URL(), 0, 2*fairAgents)
	waitStats(t, d, "A's agents to hold every slot and queue for more", func(running, waiting int) bool {
		return running == maxRunning && waiting == fairAgents-maxRunning
	})

	c := d.client(tenantB.OrgID, tenantB.UserID)
	run := c.createRun("b", "", "B: one question")
	waitStats(t, d, "B's agent to queue", func(_, waiting int) bool { return waiting == fairAgents-maxRunning+1 })
	started := model.count("A") // the calls held at the gate
	model.open()
	if got := c.waitRun(run, 60*time.Second); got.Status != store.RunCompleted {
		t.Fatalf("B's run = %+v", got)
	}
	before, ok := model.callsBefore("A", "B")
	if !ok {
		t.Fatal("B's run completed without a model call")
	}
	// First come first served would run the 196 A agents queued ahead of B
	// first; round-robin gives B the first or second slot freed, so only the
	// A agents granted slots about when B was may start a turn or two before
	// B's claim reaches the model.
	if waited := before - started; waited > 3*maxRunning {
		t.Fatalf("B waited for %d of A's turns (%d running when B came), want at most %d", waited, started, 3*maxRunning)
	} else {
		t.Logf("%s: B's turn started after %d of A's turns (A's backlog: %d runs)", kind, waited, 2*fairAgents-started)
	}
}

// BenchmarkFairness reports the latency of tenant B's one message (accepted →
// run.completed) over 20 tries, on an idle daemon and while tenant A has
// 2,000 messages (or more) queued over 200 agents; with the default 64 slots,
// without and with a per-scope cap of 32, and an instant model.
// waited-A-turns is how many of A's turns started between B's message and
// B's turn, on average.
//
//	go test -run X -bench Fairness -benchtime 1x ./cmd/openintern
func BenchmarkFairness(b *testing.B) {
	for _, kind := range storeKinds {
		b.Run(kind+"/idle", func(b *testing.B) { benchFairness(b, kind, false, 0) })
		b.Run(kind+"/loaded", func(b *testing.B) { benchFairness(b, kind, true, 0) })
		// Half the slots at most for one scope: A's turns no longer fill them all.
		b.Run(kind+"/loaded-cap32", func(b *testing.B) { benchFairness(b, kind, true, 32) })
	}
}

func benchFairness(b *testing.B, kind string, loaded bool, perScopeCap int) {
	const (
		tries   = 20
		backlog = 2000
		perTry  = 300 // more than A's turns during one of B's, first come first served
	)
	cfg := newConfig(b, kind)
	cfg.MemoryRecall = false
	cfg.MaxRunningPerScope = perScopeCap
	model := newTenantModel(false)
	d := startDaemon(b, cfg, model)
	createTenantAgents(b, d.URL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := d.Bus.Subscribe(ctx, tenantB, func(e store.Event) bool { return e.Type == "run.completed" || e.Type == "run.failed" })

	posted := 0
	if loaded {
		// Paused while the backlog is sent, so all of it is queued at once.
		// Sending more while A runs would contend for the store as much as A
		// does and fall behind, so A starts with enough for every try to find
		// at least 2,000 still queued (min-A-backlog says whether it did).
		setTenantPaused(b, d.URL(), true)
		posted = backlog + tries*perTry
		postBacklog(b, d.URL(), 0, posted)
		setTenantPaused(b, d.URL(), false)
		slots := cfg.MaxRunningAgents
		if perScopeCap > 0 {
			slots = perScopeCap
		}
		waitStats(b, d, "A's agents to take their slots", func(running, waiting int) bool {
			return running == slots && waiting > 0
		})
	}
	var latencies []time.Duration
	waitedTurns, minBacklog := 0, posted
	b.ResetTimer()
	for i := range tries {
		aBefore := model.count("A")
		t0 := time.Now()
		body := fmt.Sprintf(`{"content":"B: question %d","session_key":"b%d"}`, i, i)
		if status, out := rawRequest(d.URL(), tenantB, "POST", "/api/agents/b/messages", body); status != http.StatusAccepted {
			b.Fatalf("post: %d %s", status, out)
		}
		select {
		case e := <-done:
			if e.Type != "run.completed" {
				b.Fatalf("B's run failed: %s", e.Payload)
			}
		case <-time.After(60 * time.Second):
			b.Fatal("B's run did not complete")
		}
		latencies = append(latencies, time.Since(t0))
		if loaded {
			minBacklog = min(minBacklog, posted-model.count("A"))
			waitedTurns += aTurnsBeforeLastB(model, aBefore)
		}
	}
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
	if loaded {
		b.ReportMetric(float64(waitedTurns)/tries, "waited-A-turns")
		b.ReportMetric(float64(minBacklog), "min-A-backlog")
	}
	b.ReportMetric(0, "ns/op")
}

func setTenantPaused(b *testing.B, base string, paused bool) {
	b.Helper()
	action := map[bool]string{true: "pause", false: "resume"}[paused]
	var wg sync.WaitGroup
	errs := make(chan string, fairAgents)
	for i := range fairAgents {
		wg.Go(func() {
			if status, out := rawRequest(base, tenantA, "POST", "/api/agents/"+fairAgentID(i)+"/"+action, ""); status != http.StatusOK {
				errs <- fmt.Sprintf("%s: %d %s", action, status, out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		b.Fatal(e)
	}
}

// aTurnsBeforeLastB counts A's calls that came after the first aBefore of
// them and before B's latest call.
func aTurnsBeforeLastB(m *tenantModel, aBefore int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	lastB := len(m.calls) - 1
	for lastB >= 0 && m.calls[lastB] != "B" {
		lastB--
	}
	n := 0
	for _, c := range m.calls[:max(lastB, 0)] {
		if c == "A" {
			n++
		}
	}
	return max(n-aBefore, 0)
}

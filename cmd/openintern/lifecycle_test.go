package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

func TestIdleAgentIsPassivatedAndComesBack(t *testing.T) {
	cfg := newConfig(t, "sqlite")
	cfg.AgentIdleTimeout = config.Duration(time.Second)
	d := startDaemon(t, cfg, nil)
	c := d.client("acme", "pat")
	first := c.waitRun(c.createRun("main", "s", "before nap"), 10*time.Second)
	waitFor(t, 10*time.Second, "agent passivated", func() bool {
		st, err := d.Runtime.Stats(context.Background())
		return err == nil && st.ActiveAgents == 0
	})
	var ag store.Agent
	c.must(http.StatusOK, "GET", "/api/agents/main", nil, &ag)
	if ag.State != store.AgentIdle {
		t.Fatalf("passivated agent state %q", ag.State)
	}
	second := c.waitRun(c.createRun("main", "s", "after nap"), 10*time.Second)
	if first.Status != store.RunCompleted || second.Status != store.RunCompleted {
		t.Fatalf("runs %s / %s", first.Status, second.Status)
	}
	if !strings.Contains(second.Output, "1 earlier turn") && !strings.Contains(second.Output, "earlier") {
		t.Fatalf("the reactivated agent lost its session: %q", second.Output)
	}
}

// panicOnce panics on its first call, then behaves like the offline model.
type panicOnce struct {
	calls atomic.Int32
	llm.Provider
}

func (p *panicOnce) Complete(ctx context.Context, req llm.Request, onToken llm.TokenFunc) (llm.Response, error) {
	if p.calls.Add(1) == 1 {
		panic("provider blew up")
	}
	return p.Provider.Complete(ctx, req, onToken)
}

func TestFailingAgentGoesToErrorAndRecovers(t *testing.T) {
	d := startDaemon(t, newConfig(t, "sqlite"), &panicOnce{Provider: llm.NewOffline()})
	c := d.client("acme", "quinn")
	run := c.waitRun(c.createRun("main", "", "hello"), 15*time.Second)
	if run.Status != store.RunCompleted {
		t.Fatalf("run = %+v", run)
	}
	evs := c.agentEvents("main")
	var states []string
	for _, e := range evs {
		if e.Type == "agent.state_changed" {
			states = append(states, payloadOf(t, e)["to"].(string))
		}
	}
	assertOrder(t, states, store.AgentRunning, store.AgentError, store.AgentRunning, store.AgentIdle)
	// The run was resumed, not started twice.
	var starts int
	for _, e := range c.events(run.ID) {
		if e.Type == "run.started" {
			starts++
		}
	}
	if starts != 1 {
		t.Fatalf("run.started %d times", starts)
	}
}

func (c *client) agentEvents(agentID string) []store.Event {
	c.t.Helper()
	resp := c.openStream("/api/agents/"+agentID+"/stream", "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	go func() { <-ctx.Done(); resp.Body.Close() }()
	var out []store.Event
	for _, e := range readSSE(c.t, resp, nil) {
		if e.id != "" {
			out = append(out, eventOf(c.t, e))
		}
	}
	return out
}

func TestRunResumesFromCheckpointAfterShutdown(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			slow := llmtest.NewServer(t)
			slow.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_a", Name: "read_file", Arguments: `{"path":"missing.txt"}`}}})
			slow.SetDefault(func(llmtest.ChatRequest) llmtest.Reply { return llmtest.Reply{Text: "too late", Delay: time.Minute} })
			cfg := newConfig(t, kind)
			cfg.LLMBaseURL = slow.URL()
			d := startDaemon(t, cfg, nil)
			c := d.client("acme", "rita")
			runID := c.createRun("main", "", "check the file")
			waitFor(t, 10*time.Second, "second LLM call", func() bool { return slow.RequestCount() >= 2 })
			start := time.Now()
			d.stop()
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("shutdown with an LLM call in flight took %s", took)
			}

			fast := llmtest.NewServer(t)
			fast.SetDefault(func(llmtest.ChatRequest) llmtest.Reply { return llmtest.Reply{Text: "resumed answer"} })
			cfg.LLMBaseURL = fast.URL()
			d2 := startDaemon(t, cfg, nil)
			c2 := d2.client("acme", "rita")
			run := c2.waitRun(runID, 10*time.Second)
			if run.Status != store.RunCompleted || run.Output != "resumed answer" {
				t.Fatalf("run = %+v", run)
			}
			reqs := fast.Requests()
			if len(reqs) != 1 {
				t.Fatalf("after restart the LLM was called %d times, want 1 (step 1 must not be redone)", len(reqs))
			}
			last := reqs[0].Messages[len(reqs[0].Messages)-1]
			if last.Role != llm.RoleTool || last.ToolCallID != "call_a" {
				t.Fatalf("resumed context does not end with the checkpointed tool result: %+v", last)
			}
			evs := c2.events(runID)
			assertOrder(t, types(evs), "run.started", "tool.called", "tool.result", "step.completed", "run.resumed", "llm.called", "run.completed")
			for _, e := range evs {
				if e.Type == "run.resumed" && payloadOf(t, e)["from_step"] != float64(1) {
					t.Fatalf("run.resumed = %s", e.Payload)
				}
			}
		})
	}
}

func TestRunsOfOneAgentExecuteInOrder(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		return llmtest.Reply{Text: "done " + req.LastUserMessage(), Delay: 10 * time.Millisecond}
	})
	cfg := newConfig(t, "postgres")
	cfg.LLMBaseURL = srv.URL()
	d := startDaemon(t, cfg, nil)
	c := d.client("acme", "sam")
	var ids []string
	for _, in := range []string{"r1", "r2", "r3", "r4", "r5"} {
		ids = append(ids, c.createRun("main", "", in))
	}
	var prevEnd time.Time
	for i, id := range ids {
		run := c.waitRun(id, 10*time.Second)
		if run.Status != store.RunCompleted || run.StartedAt == nil || run.EndedAt == nil {
			t.Fatalf("run %d = %+v", i, run)
		}
		if run.StartedAt.Before(prevEnd) {
			t.Fatalf("run %d started at %s before the previous run ended at %s", i, run.StartedAt, prevEnd)
		}
		prevEnd = *run.EndedAt
	}
	var got []string
	for _, r := range srv.Requests() {
		got = append(got, r.LastUserMessage())
	}
	if strings.Join(got, ",") != "r1,r2,r3,r4,r5" {
		t.Fatalf("LLM saw inputs in order %v", got)
	}
}

func TestAgentStreamShowsStateChangesAndHeartbeats(t *testing.T) {
	cfg := newConfig(t, "sqlite")
	m := &daemon.Main{Config: cfg, Heartbeat: 50 * time.Millisecond}
	d := startDaemonMain(t, m)
	c := d.client("acme", "tess")
	resp := c.openStream("/api/agents/main/stream", "")
	runID := c.createRun("main", "", "hi")
	var sawHeartbeat bool
	raw := &bytes.Buffer{}
	buf := make([]byte, 4096)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, err := resp.Body.Read(buf)
		raw.Write(buf[:n])
		if strings.Contains(raw.String(), ": heartbeat") {
			sawHeartbeat = true
		}
		if sawHeartbeat && strings.Contains(raw.String(), `"to":"idle"`) {
			break
		}
		if err != nil {
			break
		}
	}
	s := raw.String()
	if !sawHeartbeat || !strings.Contains(s, runID) || !strings.Contains(s, `"to":"idle"`) {
		t.Fatalf("agent stream missing heartbeat, run or idle state:\n%s", s)
	}
}

func TestHealthReadyAndRequestIDs(t *testing.T) {
	d := startDaemon(t, newConfig(t, "sqlite"), nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		req, _ := http.NewRequest("GET", d.URL()+path, nil)
		req.Header.Set("X-Request-Id", "req-123")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != "req-123" {
			t.Fatalf("%s: %d %v %q", path, resp.StatusCode, body, resp.Header.Get("X-Request-Id"))
		}
	}
	resp, err := http.Get(d.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.Header.Get("X-Request-Id")) < 16 {
		t.Fatalf("no generated request id: %q", resp.Header.Get("X-Request-Id"))
	}
}

func TestBadConfigExitsTwoNamingTheKey(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		key  string
	}{
		{map[string]string{"PORT": "abc"}, []string{"serve"}, "PORT"},
		{map[string]string{"DATABASE_URL": "mysql://x"}, []string{"serve"}, "DATABASE_URL"},
		{nil, []string{"serve", "--max-steps", "0"}, "OPENINTERN_MAX_STEPS"},
		{nil, []string{"serve", "--vector-index-mb", "-5"}, "OPENINTERN_VECTOR_INDEX_MB"},
		{map[string]string{"LLM_PROVIDER": "nonsense"}, []string{"serve", "--port", "0", "--data-dir", t.TempDir()}, "LLM_PROVIDER"},
		{map[string]string{"EMBEDDING_PROVIDER": "openai", "EMBEDDING_DIM": "1536"}, []string{"serve"}, "EMBEDDING_MODEL"},
		{nil, []string{"serve", "--embedding-provider", "openai", "--embedding-model", "text-embedding-3-small"}, "EMBEDDING_DIM"},
		{map[string]string{"EMBEDDING_DIM": "1536"}, []string{"serve", "--embedding-provider", "openai", "--embedding-model", "m", "--embedding-dim", "4096"}, "EMBEDDING_DIM"},
		{map[string]string{"EMBEDDING_PROVIDER": "cohere"}, []string{"serve"}, "EMBEDDING_PROVIDER"},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
		if code != 2 || !strings.Contains(stderr.String(), tc.key) {
			t.Errorf("%v %v: exit %d, stderr %q; want 2 naming %s", tc.env, tc.args, code, stderr.String(), tc.key)
		}
	}
}

func TestRedisCarriesEventsBetweenDaemons(t *testing.T) {
	dbURL := testenv.PostgresURL(t)
	redisURL := testenv.RedisURL(t)
	mk := func() config.Config {
		cfg := newConfig(t, "sqlite")
		cfg.DatabaseURL = dbURL
		cfg.RedisURL = redisURL
		return cfg
	}
	a := startDaemon(t, mk(), nil)
	b := startDaemon(t, mk(), nil)
	ca, cb := a.client("acme", "uma"), b.client("acme", "uma")
	// Open the stream on B before the run exists on A, so B can only learn
	// about new events through Redis.
	ca.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "w", "name": "W"}, nil)
	ca.must(http.StatusOK, "POST", "/api/agents/w/pause", nil, nil)
	runID := ca.createRun("w", "", "cross-node")
	resp := cb.openStream("/api/runs/"+runID+"/stream", "")
	ca.must(http.StatusOK, "POST", "/api/agents/w/resume", nil, nil)
	got := readSSE(t, resp, nil)
	var sawCompleted, sawToken bool
	for _, e := range got {
		if e.data == "" || e.event == "end" {
			continue
		}
		switch eventOf(t, e).Type {
		case "run.completed":
			sawCompleted = true
		case "llm.token":
			sawToken = true
		}
	}
	if !sawCompleted || !sawToken {
		t.Fatalf("stream on the other daemon: completed %v, live tokens %v (%d events)", sawCompleted, sawToken, len(got))
	}
}

// startDaemonMain runs a prepared Main until the test ends.
func startDaemonMain(t *testing.T, m *daemon.Main) *testDaemon {
	t.Helper()
	if m.Logger == nil {
		m.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	d := &testDaemon{Main: m, t: t}
	t.Cleanup(d.stop)
	return d
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

func TestRunCompletesWithOfflineModelAndSurvivesRestart(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			cfg := newConfig(t, kind)
			d := startDaemon(t, cfg, nil)
			c := d.client("acme", "alice")

			runID := c.createRun("", "demo", "hello there")
			run := c.waitRun(runID, 10*time.Second)
			if run.Status != store.RunCompleted || !strings.Contains(run.Output, "hello there") {
				t.Fatalf("run = %+v", run)
			}
			evs := c.events(runID)
			assertOrder(t, types(evs), "run.started", "step.started", "llm.called", "step.completed", "run.completed")
			for i := 1; i < len(evs); i++ {
				if evs[i].ID <= evs[i-1].ID {
					t.Fatalf("event ids not increasing: %d after %d", evs[i].ID, evs[i-1].ID)
				}
			}
			last := evs[len(evs)-1]
			if last.Type != "run.completed" || last.AgentID != "main" || last.RunID != runID {
				t.Fatalf("last event = %+v", last)
			}
			if p := payloadOf(t, last); p["output"] != run.Output {
				t.Fatalf("run.completed output %v, run output %q", p["output"], run.Output)
			}

			// The message was read exactly once, into this run.
			var msgs struct {
				Messages []store.Message `json:"messages"`
			}
			c.must(http.StatusOK, "GET", "/api/agents/main/messages?status=read", nil, &msgs)
			if len(msgs.Messages) != 1 || msgs.Messages[0].RunID != runID {
				t.Fatalf("read messages = %+v", msgs.Messages)
			}

			d.stop()
			d2 := startDaemon(t, cfg, nil)
			c2 := d2.client("acme", "alice")
			var again store.Run
			c2.must(http.StatusOK, "GET", "/api/runs/"+runID, nil, &again)
			if again.Status != store.RunCompleted || again.Output != run.Output {
				t.Fatalf("after restart run = %+v", again)
			}
			if got := c2.events(runID); len(got) != len(evs) {
				t.Fatalf("after restart %d events, before %d", len(got), len(evs))
			}

			// Another scope sees none of it.
			other := d2.client("acme", "mallory")
			if status, body := other.req("GET", "/api/runs/"+runID, nil); status != http.StatusNotFound {
				t.Fatalf("other scope GET run: %d %s", status, body)
			}
			if status, _ := other.req("GET", "/api/runs/"+runID+"/events", nil); status != http.StatusNotFound {
				t.Fatalf("other scope GET events: %d", status)
			}
		})
	}
}

func TestOpenAICompatibleModelCallsToolThenAnswers(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			srv := llmtest.NewServer(t, llmtest.WithAPIKey("sk-test"))
			srv.Enqueue(
				llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "read_file", Arguments: `{"path":"notes.txt"}`}}, ChunkSize: 3},
				llmtest.Reply{Text: "The notes say: ship on Friday.", ChunkSize: 5},
			)
			cfg := newConfig(t, kind)
			cfg.LLMBaseURL = srv.URL()
			cfg.LLMAPIKey = "sk-test"
			cfg.LLMModel = "gpt-test"
			if err := os.MkdirAll(cfg.Workspace(), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(cfg.Workspace(), "notes.txt"), []byte("ship on Friday\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			d := startDaemon(t, cfg, nil)
			c := d.client("acme", "bob")

			runID := c.createRun("main", "s1", "what do my notes say?")
			run := c.waitRun(runID, 10*time.Second)
			if run.Status != store.RunCompleted || run.Output != "The notes say: ship on Friday." {
				t.Fatalf("run = %+v", run)
			}
			evs := c.events(runID)
			assertOrder(t, types(evs), "run.started", "llm.called", "tool.called", "tool.result", "step.completed", "llm.called", "run.completed")
			for _, e := range evs {
				if e.Type == "tool.result" {
					p := payloadOf(t, e)
					if p["is_error"] != false || !strings.Contains(p["content"].(string), "ship on Friday") {
						t.Fatalf("tool.result = %s", e.Payload)
					}
				}
			}
			reqs := srv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("LLM got %d requests, want 2", len(reqs))
			}
			if reqs[0].Model != "gpt-test" || reqs[0].Authorization != "Bearer sk-test" || len(reqs[0].Tools) == 0 {
				t.Fatalf("first request: model %q auth %q tools %d", reqs[0].Model, reqs[0].Authorization, len(reqs[0].Tools))
			}
			lastMsg := reqs[1].Messages[len(reqs[1].Messages)-1]
			if lastMsg.Role != llm.RoleTool || lastMsg.ToolCallID != "call_1" || !strings.Contains(lastMsg.Content, "ship on Friday") {
				t.Fatalf("second request's last message = %+v", lastMsg)
			}
		})
	}
}

func TestBadAPIKeyFailsRunClearly(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.WithAPIKey("right"))
	cfg := newConfig(t, "sqlite")
	cfg.LLMBaseURL = srv.URL()
	cfg.LLMAPIKey = "wrong"
	d := startDaemon(t, cfg, nil)
	c := d.client("acme", "bob")
	run := c.waitRun(c.createRun("main", "", "hi"), 10*time.Second)
	if run.Status != store.RunFailed || run.Error == nil || run.Error.Code != "llm_auth" {
		t.Fatalf("run = %+v (error %+v)", run, run.Error)
	}
	evs := c.events(run.ID)
	if evs[len(evs)-1].Type != "run.failed" {
		t.Fatalf("last event %s", evs[len(evs)-1].Type)
	}
	if srv.RequestCount() != 1 {
		t.Fatalf("a bad key was retried: %d requests", srv.RequestCount())
	}
}

func TestStepLimitFailsRun(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		return llmtest.Reply{ToolCalls: []llm.ToolCall{{Name: "read_file", Arguments: `{"path":"nope.txt"}`}}}
	})
	cfg := newConfig(t, "sqlite")
	cfg.LLMBaseURL = srv.URL()
	cfg.MaxStepsPerRun = 3
	d := startDaemon(t, cfg, nil)
	c := d.client("acme", "bob")
	run := c.waitRun(c.createRun("main", "", "loop forever"), 10*time.Second)
	if run.Status != store.RunFailed || run.Error == nil || run.Error.Code != "max_steps" {
		t.Fatalf("run = %+v", run)
	}
	if n := srv.RequestCount(); n != 3 {
		t.Fatalf("LLM called %d times, want 3", n)
	}
	// The missing file was an error result for the model, not a crash.
	for _, e := range c.events(run.ID) {
		if e.Type == "tool.result" && payloadOf(t, e)["is_error"] != true {
			t.Fatalf("tool.result for a missing file is not an error: %s", e.Payload)
		}
	}
}

func TestSessionHistoryIsInContext(t *testing.T) {
	srv := llmtest.NewServer(t)
	cfg := newConfig(t, "postgres")
	cfg.LLMBaseURL = srv.URL()
	d := startDaemon(t, cfg, nil)
	c := d.client("acme", "carol")
	c.waitRun(c.createRun("main", "trip", "my name is Carol"), 10*time.Second)
	c.waitRun(c.createRun("main", "other", "unrelated"), 10*time.Second)
	c.waitRun(c.createRun("main", "trip", "what is my name?"), 10*time.Second)
	reqs := srv.Requests()
	last := reqs[len(reqs)-1]
	var joined []string
	for _, m := range last.Messages {
		joined = append(joined, m.Role+":"+m.Content)
	}
	all := strings.Join(joined, "|")
	if !strings.Contains(all, "user:my name is Carol") || !strings.Contains(all, "assistant:echo: my name is Carol") {
		t.Fatalf("session history missing from context: %s", all)
	}
	// Recalled memories (system messages) may mention other sessions of the
	// scope on purpose; the session history (user/assistant turns) may not.
	if strings.Contains(all, "user:unrelated") || strings.Contains(all, "assistant:echo: unrelated") {
		t.Fatalf("another session leaked into the context: %s", all)
	}
}

func TestPlainMessagesDrainedIntoOneRunAfterResume(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			d := startDaemon(t, newConfig(t, kind), nil)
			c := d.client("acme", "dave")
			c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "writer", "name": "Writer"}, nil)
			var st struct{ State string }
			c.must(http.StatusOK, "POST", "/api/agents/writer/pause", nil, &st)
			if st.State != store.AgentPaused {
				t.Fatalf("pause -> %q", st.State)
			}
			for _, text := range []string{"one", "two", "three"} {
				var acc struct {
					MessageID string `json:"message_id"`
					Status    string `json:"status"`
				}
				c.must(http.StatusAccepted, "POST", "/api/agents/writer/messages", map[string]string{"content": text}, &acc)
				if acc.Status != "queued" || acc.MessageID == "" {
					t.Fatalf("accepted = %+v", acc)
				}
			}
			var ag store.Agent
			c.must(http.StatusOK, "GET", "/api/agents/writer", nil, &ag)
			if ag.State != store.AgentPaused || ag.Unread != 3 {
				t.Fatalf("paused agent = %+v", ag)
			}
			c.must(http.StatusOK, "POST", "/api/agents/writer/resume", nil, &st)

			deadline := time.Now().Add(10 * time.Second)
			var runs struct {
				Runs  []store.Run `json:"runs"`
				Total int         `json:"total"`
			}
			for {
				c.must(http.StatusOK, "GET", "/api/runs?agent_id=writer", nil, &runs)
				if len(runs.Runs) == 1 && runs.Runs[0].Status == store.RunCompleted {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("runs = %+v", runs)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if runs.Total != 1 || runs.Runs[0].Input != "one\n\ntwo\n\nthree" {
				t.Fatalf("drained run = %+v", runs.Runs[0])
			}
			c.must(http.StatusOK, "GET", "/api/agents/writer", nil, &ag)
			if ag.Unread != 0 {
				t.Fatalf("unread after run = %d", ag.Unread)
			}
		})
	}
}

func TestCancelStopsRunningRunAtOnce(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(llmtest.ChatRequest) llmtest.Reply { return llmtest.Reply{Text: "slow", Delay: 30 * time.Second} })
	cfg := newConfig(t, "sqlite")
	cfg.LLMBaseURL = srv.URL()
	d := startDaemon(t, cfg, nil)
	c := d.client("acme", "erin")
	runID := c.createRun("main", "", "take your time")
	deadline := time.Now().Add(10 * time.Second)
	for srv.RequestCount() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("LLM never called")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	var out struct {
		Status string `json:"status"`
	}
	c.must(http.StatusAccepted, "POST", "/api/runs/"+runID+"/cancel", nil, &out)
	run := c.waitRun(runID, 5*time.Second)
	if run.Status != store.RunCancelled {
		t.Fatalf("run = %+v", run)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("cancel took %s", took)
	}
	if status, body := c.req("POST", "/api/runs/"+runID+"/cancel", nil); status != http.StatusConflict || !strings.Contains(string(body), "run_finished") {
		t.Fatalf("second cancel: %d %s", status, body)
	}
	// A pending run is cancelled before it starts, with its own event.
	c.must(http.StatusOK, "POST", "/api/agents/main/pause", nil, nil)
	pending := c.createRun("main", "", "never")
	c.must(http.StatusAccepted, "POST", "/api/runs/"+pending+"/cancel", nil, &out)
	if out.Status != store.RunCancelled {
		t.Fatalf("pending cancel -> %q", out.Status)
	}
	if evs := c.events(pending); len(evs) != 1 || evs[0].Type != "run.cancelled" {
		t.Fatalf("pending cancel events %v", types(evs))
	}
}

func TestAPIErrors(t *testing.T) {
	d := startDaemon(t, newConfig(t, "sqlite"), nil)
	c := d.client("acme", "frank")
	runID := c.createRun("main", "", "hi")
	c.waitRun(runID, 10*time.Second)
	noScope := &client{t: t, base: d.URL()}
	big := `{"input":"` + strings.Repeat("x", 2<<20) + `"}`

	cases := []struct {
		name   string
		c      *client
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"missing scope", noScope, "GET", "/api/agents", nil, 400, "missing_scope"},
		{"malformed json", c, "POST", "/api/runs", `{"input": "x"`, 400, "invalid_json"},
		{"unknown field", c, "POST", "/api/runs", `{"input": "x", "inptu": 1}`, 400, "invalid_json"},
		{"empty input", c, "POST", "/api/runs", `{"input": "  "}`, 400, "invalid_run"},
		{"2 MiB body", c, "POST", "/api/runs", big, 413, "body_too_large"},
		{"unknown agent run", c, "POST", "/api/runs", `{"input":"x","agent_id":"ghost"}`, 404, "not_found"},
		{"unknown agent", c, "GET", "/api/agents/ghost", nil, 404, "not_found"},
		{"bad agent id", c, "GET", "/api/agents/BAD!", nil, 404, "not_found"},
		{"message to unknown agent", c, "POST", "/api/agents/ghost/messages", `{"content":"x"}`, 404, "not_found"},
		{"bad run id", c, "GET", "/api/runs/nope", nil, 404, "not_found"},
		{"another scope's run", d.client("acme", "mallory"), "GET", "/api/runs/" + runID, nil, 404, "not_found"},
		{"another org's run", d.client("evil", "frank"), "POST", "/api/runs/" + runID + "/cancel", nil, 404, "not_found"},
		{"bad cursor", c, "GET", "/api/runs/" + runID + "/events?cursor=abc", nil, 400, "invalid_cursor"},
		{"bad agent id on create", c, "POST", "/api/agents", `{"agent_id":"Bad Id","name":"x"}`, 400, "invalid_agent_id"},
		{"agent without name", c, "POST", "/api/agents", `{"agent_id":"x"}`, 400, "invalid_agent"},
		{"unknown route", c, "GET", "/api/nothing", nil, 404, "not_found"},
		{"wrong method", c, "PUT", "/api/runs", `{}`, 405, "method_not_allowed"},
		{"bad page", c, "GET", "/api/agents?page=0", nil, 400, "invalid_page"},
		{"delete main", c, "DELETE", "/api/agents/main", nil, 409, "main_agent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := tc.c.req(tc.method, tc.path, tc.body)
			if status != tc.status || !strings.Contains(string(body), `"code":"`+tc.code+`"`) {
				t.Fatalf("%s %s: %d %s; want %d %s", tc.method, tc.path, status, body, tc.status, tc.code)
			}
		})
	}

	// Creating the same agent twice is a conflict; the scope comes from the body too.
	c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "dup", "name": "Dup"}, nil)
	bodyScoped := &client{t: t, base: d.URL()}
	if status, body := bodyScoped.req("POST", "/api/agents", `{"org_id":"acme","user_id":"frank","agent_id":"dup","name":"Dup"}`); status != 409 {
		t.Fatalf("duplicate agent: %d %s", status, body)
	}
	if status, _ := bodyScoped.req("GET", "/api/agents/dup?org_id=acme&user_id=frank", nil); status != 200 {
		t.Fatalf("query scope: %d", status)
	}
	if status, _ := bodyScoped.req("GET", "/api/agents/dup?org_id=acme&user_id=frank&project_id=p1", nil); status != 404 {
		t.Fatalf("another project saw the agent: %d", status)
	}
}

func TestRunStreamResumesWithoutGapOrDuplicate(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(llmtest.ToolThenText("read_file", `{"path":"missing.txt"}`, "all done here"))
	cfg := newConfig(t, "postgres")
	cfg.LLMBaseURL = srv.URL()
	d := startDaemon(t, cfg, nil)
	c := d.client("acme", "gina")
	runID := c.createRun("main", "", "go")
	full := readSSE(t, c.openStream("/api/runs/"+runID+"/stream", ""), nil)
	if len(full) == 0 || full[len(full)-1].event != "end" {
		t.Fatalf("stream did not end: %+v", full)
	}
	var ids []string
	tokens := 0
	for _, e := range full {
		switch {
		case e.id != "":
			ids = append(ids, e.id)
		case e.event == "" && eventOf(t, e).Type == "llm.token":
			tokens++
		}
	}
	stored := c.events(runID)
	if len(ids) != len(stored) {
		t.Fatalf("stream sent %d stored events, store has %d", len(ids), len(stored))
	}
	// Resume from the middle: exactly the rest, in order.
	mid := len(stored) / 2
	rest := readSSE(t, c.openStream("/api/runs/"+runID+"/stream", ids[mid-1]), nil)
	var restIDs []string
	for _, e := range rest {
		if e.id != "" {
			restIDs = append(restIDs, e.id)
		}
	}
	if strings.Join(restIDs, ",") != strings.Join(ids[mid:], ",") {
		t.Fatalf("resume from %s: got %v want %v", ids[mid-1], restIDs, ids[mid:])
	}
	_ = tokens
}

func TestLiveStreamCarriesTokensAndEndsWithRun(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(llmtest.ChatRequest) llmtest.Reply {
		return llmtest.Reply{Text: "one two three four five six", ChunkSize: 4, Delay: 300 * time.Millisecond, ChunkDelay: 5 * time.Millisecond}
	})
	cfg := newConfig(t, "sqlite")
	cfg.LLMBaseURL = srv.URL()
	d := startDaemon(t, cfg, nil)
	c := d.client("acme", "hal")
	runID := c.createRun("main", "", "count")
	got := readSSE(t, c.openStream("/api/runs/"+runID+"/stream", ""), nil)
	var text strings.Builder
	for _, e := range got {
		if e.id == "" && e.event == "" {
			ev := eventOf(t, e)
			if ev.Type == "llm.token" {
				text.WriteString(payloadOf(t, ev)["delta"].(string))
			}
		}
	}
	if text.String() != "one two three four five six" {
		t.Fatalf("tokens joined = %q (events %d)", text.String(), len(got))
	}
	if got[len(got)-1].event != "end" {
		t.Fatalf("stream did not end after the run")
	}
}

func TestConcurrencyCapQueuesAgentsInOrder(t *testing.T) {
	srv := llmtest.NewServer(t)
	var mu sync.Mutex
	inFlight, maxInFlight := 0, 0
	release := map[string]chan struct{}{}
	arrived := make(chan string, 16)
	// Calls still held when the test ends (it failed) return, so the server can close.
	ended := make(chan struct{})
	t.Cleanup(func() { close(ended) })
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		name := strings.TrimPrefix(req.LastUserMessage(), "work of ")
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		ch := release[name]
		mu.Unlock()
		arrived <- name
		select {
		case <-ch:
		case <-ended:
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
		return llmtest.Reply{Text: "ok"}
	})
	cfg := newConfig(t, "sqlite")
	cfg.LLMBaseURL = srv.URL()
	cfg.MaxRunningAgents = 2
	d := startDaemon(t, cfg, nil)
	c := d.client("acme", "ivy")
	names := []string{"a", "b", "c", "d", "e", "f"}
	for _, n := range names {
		c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "agent-" + n, "name": n}, nil)
		release[n] = make(chan struct{})
	}
	next := func() string {
		t.Helper()
		select {
		case n := <-arrived:
			return n
		case <-time.After(10 * time.Second):
			t.Fatal("no LLM call arrived")
			return ""
		}
	}
	runs := map[string]string{}
	runs["a"] = c.createRun("agent-a", "", "work of a")
	runs["b"] = c.createRun("agent-b", "", "work of b")
	if got := []string{next(), next()}; !(got[0] == "a" && got[1] == "b" || got[0] == "b" && got[1] == "a") {
		t.Fatalf("first LLM calls = %v, want a and b", got)
	}
	// Queue the rest one at a time, so the order in which they ask is known.
	for i, n := range names[2:] {
		runs[n] = c.createRun("agent-"+n, "", "work of "+n)
		waitFor(t, 10*time.Second, n+" queued", func() bool {
			st, err := d.Runtime.Stats(context.Background())
			return err == nil && st.WaitingAgents == i+1
		})
	}
	// Each slot a finished run frees goes to the agent that waited longest.
	for i, n := range names[:4] {
		close(release[n])
		if got := next(); got != names[i+2] {
			t.Fatalf("after %s finished, %s got the slot, want %s", n, got, names[i+2])
		}
	}
	close(release["e"])
	close(release["f"])
	for _, n := range names {
		if run := c.waitRun(runs[n], 20*time.Second); run.Status != store.RunCompleted {
			t.Fatalf("run of %s = %+v", n, run)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if maxInFlight != 2 {
		t.Fatalf("max LLM calls in flight = %d, want exactly the cap 2", maxInFlight)
	}
}

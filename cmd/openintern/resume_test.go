package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// stepOf is the step a chat request is for: 1 + the assistant answers after
// the run's input (earlier turns of the session come before it).
func stepOf(req llmtest.ChatRequest) int {
	step := 1
	for i := len(req.Messages) - 1; i >= 0 && req.Messages[i].Role != llm.RoleUser; i-- {
		if req.Messages[i].Role == llm.RoleAssistant {
			step++
		}
	}
	return step
}

// embeddedTimes counts the embedding requests that embedded text first.
func (es *embeddingsServer) embeddedTimes(text string) int {
	es.mu.Lock()
	defer es.mu.Unlock()
	n := 0
	for _, in := range es.inputs {
		if in[0] == text {
			n++
		}
	}
	return n
}

// TestKilledDuringToolsResumesWithoutRepeats kills the daemon (kill -9)
// while the second of two memory_write calls of a step runs. The restarted
// daemon must not ask the model for that step again, must not run the first
// call again (its memory is stored once), must run the second, and must not
// store the step's events twice. The run's first event is run.started.
func TestKilledDuringToolsResumesWithoutRepeats(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon as a child process; run without -short")
	}
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { killedDuringTools(t, kind) })
	}
}

func killedDuringTools(t *testing.T, kind string) {
	const first, second = "zebrafact one", "zebrafact two"
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		if stepOf(req) == 1 {
			return llmtest.Reply{ToolCalls: []llm.ToolCall{
				{ID: "call_0", Name: "memory_write", Arguments: fmt.Sprintf(`{"text":%q,"type":"archival"}`, first)},
				{ID: "call_1", Name: "memory_write", Arguments: fmt.Sprintf(`{"text":%q,"type":"archival"}`, second)},
			}}
		}
		return llmtest.Reply{Text: "done"}
	})
	es := newEmbeddingsServer(t, testEmbedDim)
	const input = "remember two facts"
	es.hold(input, first) // the input's recall and the first write pass; the second write waits
	env := []string{"LLM_BASE_URL=" + srv.URL(), "LLM_API_KEY=k", "DATA_DIR=" + t.TempDir(), "LOG_LEVEL=warn", "REDIS_URL=", "DATABASE_URL=",
		"EMBEDDING_PROVIDER=openai", "EMBEDDING_MODEL=" + testEmbedModel, "EMBEDDING_BASE_URL=" + es.baseURL(),
		"EMBEDDING_DIM=" + fmt.Sprint(testEmbedDim), "EMBEDDING_API_KEY=" + testEmbedKey}
	if kind == "postgres" {
		env = append(env, "DATABASE_URL="+testenv.PostgresURL(t))
	}
	scope := store.Scope{OrgID: "resume", UserID: "u1"}
	p := startProcess(t, env)
	status, body := rawRequest(p.url, scope, "POST", "/api/runs", fmt.Sprintf(`{"agent_id":"main","input":%q}`, input))
	if status != http.StatusCreated {
		t.Fatalf("create run: %d %s", status, body)
	}
	var run store.Run
	_ = json.Unmarshal(body, &run)

	waitFor(t, 30*time.Second, "the second memory_write to reach the embedder", func() bool { return es.heldCount() > 0 })
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	es.unhold()

	p2 := startProcess(t, env)
	waitFor(t, 30*time.Second, "the run to end", func() bool {
		_, body := rawRequest(p2.url, scope, "GET", "/api/runs/"+run.ID, "")
		_ = json.Unmarshal(body, &run)
		return store.RunFinished(run.Status)
	})
	if run.Status != store.RunCompleted || run.Output != "done" {
		t.Fatalf("run ended %s %q %+v", run.Status, run.Output, run.Error)
	}

	calls := map[int]int{}
	for _, req := range srv.Requests() {
		calls[stepOf(req)]++
	}
	if calls[1] != 1 || calls[2] != 1 {
		t.Errorf("model calls by step: %v, want one for each step", calls)
	}
	if n := es.embeddedTimes(first); n != 1 {
		t.Errorf("the finished first call ran %d times", n)
	}
	for text, want := range map[string]int{first: 1, second: 1} {
		if n := countMemories(t, p2.url, scope, text); n != want {
			t.Errorf("%d memories %q, want %d", n, text, want)
		}
	}

	var page struct {
		Events []store.Event `json:"events"`
	}
	_, body = rawRequest(p2.url, scope, "GET", "/api/runs/"+run.ID+"/events?limit=1000", "")
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	got := types(page.Events)
	if len(got) == 0 || got[0] != "run.started" {
		t.Fatalf("first event of the run: %v", got)
	}
	count := map[string]int{}
	for _, e := range page.Events {
		key := e.StepID + " " + e.Type
		if e.Type == "tool.called" || e.Type == "tool.result" {
			var p struct {
				CallID string `json:"call_id"`
			}
			_ = json.Unmarshal(e.Payload, &p)
			key += " " + p.CallID
		}
		count[key]++
	}
	for _, key := range []string{"step_1 step.started", "step_1 llm.called", "step_1 tool.called call_0", "step_1 tool.called call_1",
		"step_1 tool.result call_0", "step_1 tool.result call_1", "step_1 step.completed", "step_2 step.started", "step_2 llm.called", " run.resumed"} {
		if count[key] != 1 {
			t.Errorf("%q stored %d times; trace %v", key, count[key], got)
		}
	}
}

// countMemories counts the archival memories whose text is text.
func countMemories(t *testing.T, base string, scope store.Scope, text string) int {
	t.Helper()
	var res struct {
		Results []struct {
			Snippet string `json:"snippet"`
		} `json:"results"`
	}
	_, body := rawRequest(base, scope, "GET", "/api/memories/search?mode=fulltext&type=archival&top_k=100&q="+url.QueryEscape(text), "")
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("search: %s: %v", body, err)
	}
	n := 0
	for _, r := range res.Results {
		if strings.TrimSpace(r.Snippet) == text {
			n++
		}
	}
	return n
}

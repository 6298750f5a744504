package actors

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// useGemini points the harness's runtime at a local Gemini server, with the
// real read_file tool over a workspace holding a.txt and b.txt.
func useGemini(t *testing.T, h *harness) *llmtest.GeminiServer {
	t.Helper()
	srv := llmtest.NewGeminiServer(t)
	p, err := llm.NewGemini(llm.GeminiConfig{BaseURL: srv.URL(), APIKey: "test-key", Timeout: 30 * time.Second, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	h.model = p
	ws := t.TempDir()
	for name, text := range map[string]string{"a.txt": "alpha says hello", "b.txt": "beta says bye"} {
		if err := os.WriteFile(filepath.Join(ws, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reg := tools.NewRegistry()
	if err := reg.Register(tools.NewReadFile(ws)); err != nil {
		t.Fatal(err)
	}
	h.router = reg
	return srv
}

// A run on Gemini: two tool calls in one step, then a final answer; the
// second request carries the calls and their results paired as Gemini wants.
func TestGeminiRunToolCallsThenAnswer(t *testing.T) {
	h := newHarness(t, Config{IdleTimeout: time.Hour})
	srv := useGemini(t, h)
	srv.Enqueue(
		llmtest.Reply{ToolCalls: []llm.ToolCall{
			{Name: "read_file", Arguments: `{"path":"a.txt"}`},
			{Name: "read_file", Arguments: `{"path":"b.txt"}`},
		}},
		llmtest.Reply{Text: "a.txt greets, b.txt says goodbye.", ChunkSize: 5},
	)
	h.start()
	h.createAgent("g1")
	runID := h.createRun("g1", "what do a.txt and b.txt say?")
	run := h.waitRun(runID, 20*time.Second)
	if run.Status != store.RunCompleted || run.Output != "a.txt greets, b.txt says goodbye." {
		t.Fatalf("run %+v", run)
	}

	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	first, second := reqs[0], reqs[1]
	if first.SystemInstruction == "" || len(first.Tools) != 1 || first.Tools[0].Name != "read_file" || !json.Valid(first.Tools[0].Parameters) {
		t.Errorf("first request: system %q tools %+v", first.SystemInstruction, first.Tools)
	}
	if first.Model != llm.DefaultGeminiModel || !first.Stream {
		t.Errorf("model %q stream %v", first.Model, first.Stream)
	}
	var roles []string
	for _, c := range second.Contents {
		roles = append(roles, c.Role)
	}
	if strings.Join(roles, ",") != "user,model,user" {
		t.Fatalf("second request roles %v: %s", roles, second.Body)
	}
	calls, results := second.Contents[1].Parts, second.Contents[2].Parts
	if len(calls) != 2 || len(results) != 2 {
		t.Fatalf("calls %+v results %+v", calls, results)
	}
	for i, want := range []string{"alpha says hello", "beta says bye"} {
		fc, fr := calls[i].FunctionCall, results[i].FunctionResponse
		if fc == nil || fr == nil || fc.Name != "read_file" || fr.Name != "read_file" {
			t.Fatalf("pair %d: %+v %+v", i, fc, fr)
		}
		var resp struct{ Content string }
		if err := json.Unmarshal(fr.Response, &resp); err != nil || !strings.Contains(resp.Content, want) {
			t.Errorf("result %d = %s, want it to contain %q", i, fr.Response, want)
		}
	}

	// The trace shows the calls under the ids made for them, and the tokens streamed.
	evs, _, err := h.store.ListEvents(context.Background(), testScope, store.EventFilter{RunID: runID, Types: []string{"tool.called"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || !strings.Contains(string(evs[0].Payload), `"call_0"`) || !strings.Contains(string(evs[1].Payload), `"call_1"`) {
		t.Errorf("tool.called events %d: %+v", len(evs), evs)
	}
}

// A 400 from Gemini fails the run, and the run's error carries Google's message.
func TestGeminiBadRequestFailsRun(t *testing.T) {
	h := newHarness(t, Config{IdleTimeout: time.Hour})
	srv := useGemini(t, h)
	msg := "* GenerateContentRequest.generation_config.max_output_tokens: must be positive"
	srv.Enqueue(llmtest.Reply{Status: 400, ErrorMessage: msg})
	h.start()
	h.createAgent("g1")
	run := h.waitRun(h.createRun("g1", "hi"), 20*time.Second)
	if run.Status != store.RunFailed || run.Error == nil || run.Error.Code != "llm_bad_request" || !strings.Contains(run.Error.Message, msg) {
		t.Fatalf("run %+v error %+v", run, run.Error)
	}
	if n := srv.RequestCount(); n != 1 {
		t.Errorf("%d requests; a 400 is not retried", n)
	}
}

// A session whose first turn ran on an OpenAI-compatible model continues on
// Gemini: the Gemini request holds the earlier turn as user/model contents.
func TestSessionContinuesOnGemini(t *testing.T) {
	h := newHarness(t, Config{IdleTimeout: time.Hour, SessionHistory: 10})
	h.llm.Enqueue(llmtest.Reply{Text: "Paris is the capital."})
	h.start()
	h.createAgent("g1")
	first := h.waitRun(h.createRun("g1", "capital of France?"), 20*time.Second)
	if first.Status != store.RunCompleted {
		t.Fatalf("first run %+v", first)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.rt.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	srv := useGemini(t, h)
	srv.Enqueue(llmtest.Reply{Text: "About 2 million."})
	h.start()
	second := h.waitRun(h.createRun("g1", "and its population?"), 20*time.Second)
	if second.Status != store.RunCompleted || second.Output != "About 2 million." {
		t.Fatalf("second run %+v", second)
	}
	r := srv.Requests()[0]
	var got []string
	for _, c := range r.Contents {
		got = append(got, c.Role+":"+c.Parts[0].Text)
	}
	want := "user:capital of France?|model:Paris is the capital.|user:and its population?"
	if strings.Join(got, "|") != want {
		t.Errorf("contents %q, want %q", strings.Join(got, "|"), want)
	}
}

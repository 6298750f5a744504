package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/tools"
)

// newGemini returns a provider for srv with fast backoff; mod may change cfg.
func newGemini(t *testing.T, srv *llmtest.GeminiServer, mod func(*llm.GeminiConfig)) *llm.Gemini {
	t.Helper()
	cfg := llm.GeminiConfig{
		BaseURL:     srv.URL(),
		APIKey:      srv.APIKey(),
		Model:       "gemini-2.5-flash",
		Timeout:     5 * time.Second,
		BackoffBase: time.Millisecond,
		MaxBackoff:  20 * time.Millisecond,
	}
	if cfg.APIKey == "" {
		cfg.APIKey = "test-key"
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := llm.NewGemini(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGeminiStreamsTextInOrder(t *testing.T) {
	srv := llmtest.NewGeminiServer(t, llmtest.WithGeminiAPIKey("g-key"))
	text := "Hello, streaming world! Ünïcödé works too: 你好世界."
	srv.Enqueue(llmtest.Reply{Text: text, ChunkSize: 3, Model: "gemini-2.5-flash-001",
		Usage: &llm.Usage{PromptTokens: 40, CompletionTokens: 12, TotalTokens: 52, CacheReadTokens: 32}})
	p := newGemini(t, srv, nil)

	temp := 0.2
	var rec tokenRecorder
	resp, err := p.Complete(context.Background(), llm.Request{
		Messages: []llm.Message{
			{Role: llm.RoleSystem, Content: "You are terse."},
			{Role: llm.RoleSystem, Content: "Core memory: likes tea."},
			{Role: llm.RoleUser, Content: "hi"},
		},
		Temperature: &temp,
		MaxTokens:   100,
	}, rec.on)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.get(), ""); got != text {
		t.Errorf("streamed %q, want %q", got, text)
	}
	if n := len(rec.get()); n < 10 {
		t.Errorf("got %d deltas; the text should arrive in many chunks", n)
	}
	want := llm.Response{Model: "gemini-2.5-flash-001", Content: text, FinishReason: "stop",
		Usage: llm.Usage{PromptTokens: 40, CompletionTokens: 12, TotalTokens: 52, CacheReadTokens: 32}}
	if resp.Model != want.Model || resp.Content != want.Content || resp.FinishReason != want.FinishReason || resp.Usage != want.Usage || resp.ToolCalls != nil {
		t.Errorf("resp %+v, want %+v", resp, want)
	}

	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Path != "/v1beta/models/gemini-2.5-flash:streamGenerateContent" || !r.Stream || r.APIKey != "g-key" || r.Model != "gemini-2.5-flash" {
		t.Errorf("path %q stream %v key %q model %q", r.Path, r.Stream, r.APIKey, r.Model)
	}
	if r.SystemInstruction != "You are terse.\nCore memory: likes tea." {
		t.Errorf("systemInstruction %q", r.SystemInstruction)
	}
	if len(r.Contents) != 1 || r.Contents[0].Role != "user" || r.Contents[0].Parts[0].Text != "hi" {
		t.Errorf("contents %+v", r.Contents)
	}
	if r.Temperature == nil || *r.Temperature < 0.19 || *r.Temperature > 0.21 || r.MaxOutputTokens != 100 {
		t.Errorf("generationConfig temperature %v max %d", r.Temperature, r.MaxOutputTokens)
	}
	if len(r.Tools) != 0 || strings.Contains(string(r.Body), `"tools"`) {
		t.Errorf("tools sent without any: %s", r.Body)
	}
}

// The whole history shape: system, a step with two calls, their results in
// one user content, then a user follow-up; tools declared with their real
// JSON schemas.
func TestGeminiRequestMapsHistoryAndTools(t *testing.T) {
	srv := llmtest.NewGeminiServer(t)
	p := newGemini(t, srv, nil)
	ws := t.TempDir()
	specs := []llm.ToolSpec{tools.NewReadFile(ws).Spec(), tools.NewEditFile(ws).Spec(), {Name: "no_params", Description: "none"}}
	_, err := p.Complete(context.Background(), llm.Request{
		Messages: []llm.Message{
			{Role: llm.RoleSystem, Content: "sys"},
			{Role: llm.RoleUser, Content: "read a and b"},
			{Role: llm.RoleAssistant, Content: "Reading both.", ToolCalls: []llm.ToolCall{
				{ID: "call_0", Name: "read_file", Arguments: `{"path":"a.txt"}`},
				{ID: "fc-abc", Name: "read_file", Arguments: `{"path":"b.txt"}`},
			}},
			{Role: llm.RoleTool, ToolCallID: "call_0", Name: "read_file", Content: "A\x00"},
			{Role: llm.RoleTool, ToolCallID: "fc-abc", Content: "B"}, // no name: found from the call
			{Role: llm.RoleUser, Content: "and now?"},
			{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: "call_0", Name: "read_file", Arguments: `{"path":`}}},
			{Role: llm.RoleTool, ToolCallID: "call_0", Name: "read_file", Content: "error: invalid JSON arguments"},
		},
		Tools: specs,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := srv.Requests()[0]
	if r.SystemInstruction != "sys" {
		t.Errorf("systemInstruction %q", r.SystemInstruction)
	}
	roles := []string{}
	for _, c := range r.Contents {
		roles = append(roles, c.Role)
	}
	if got := strings.Join(roles, ","); got != "user,model,user,user,model,user" {
		t.Fatalf("roles %s; body %s", got, r.Body)
	}
	model := r.Contents[1]
	if len(model.Parts) != 3 || model.Parts[0].Text != "Reading both." {
		t.Fatalf("model parts %+v", model.Parts)
	}
	c0, c1 := model.Parts[1].FunctionCall, model.Parts[2].FunctionCall
	if c0 == nil || c1 == nil || c0.Name != "read_file" || string(c0.Args) != `{"path":"a.txt"}` || string(c1.Args) != `{"path":"b.txt"}` {
		t.Fatalf("function calls %+v %+v", c0, c1)
	}
	// A made-up id is not sent back; one the API gave is.
	if c0.ID != "" || c1.ID != "fc-abc" {
		t.Errorf("call ids %q %q", c0.ID, c1.ID)
	}
	// gemini-2.5 checks no thought signatures: none is invented.
	if model.Parts[1].ThoughtSignature != nil {
		t.Errorf("thought signature sent to gemini-2.5: %q", model.Parts[1].ThoughtSignature)
	}
	results := r.Contents[2]
	if len(results.Parts) != 2 {
		t.Fatalf("tool results not in one content: %+v", results.Parts)
	}
	f0, f1 := results.Parts[0].FunctionResponse, results.Parts[1].FunctionResponse
	if f0 == nil || f1 == nil || f0.Name != "read_file" || f1.Name != "read_file" || f0.ID != "" || f1.ID != "fc-abc" {
		t.Fatalf("function responses %+v %+v", f0, f1)
	}
	var resp0 struct{ Content string }
	if err := json.Unmarshal(f0.Response, &resp0); err != nil || resp0.Content != "A\x00" {
		t.Errorf("response %s (%v)", f0.Response, err)
	}
	if r.Contents[3].Parts[0].Text != "and now?" {
		t.Errorf("follow-up %+v", r.Contents[3])
	}
	// Broken arguments are kept as text rather than dropped.
	bad := r.Contents[4].Parts[0].FunctionCall
	if bad == nil || string(bad.Args) != `{"arguments":"{\"path\":"}` {
		t.Errorf("broken args sent as %+v", bad)
	}

	if len(r.Tools) != 3 {
		t.Fatalf("tools %+v", r.Tools)
	}
	for i, spec := range specs[:2] {
		var want, got any
		_ = json.Unmarshal(spec.Parameters, &want)
		if err := json.Unmarshal(r.Tools[i].Parameters, &got); err != nil {
			t.Fatalf("tool %s schema %s: %v", spec.Name, r.Tools[i].Parameters, err)
		}
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(got)
		if r.Tools[i].Name != spec.Name || string(wb) != string(gb) || r.Tools[i].Description != spec.Description {
			t.Errorf("tool %d: got %s %s, want %s %s", i, r.Tools[i].Name, gb, spec.Name, wb)
		}
	}
	if !strings.Contains(string(r.Body), `"parametersJsonSchema"`) {
		t.Errorf("schemas not sent as parametersJsonSchema: %s", r.Body)
	}
	if string(r.Tools[2].Parameters) != `{"properties":{},"type":"object"}` && string(r.Tools[2].Parameters) != `{"type":"object","properties":{}}` {
		t.Errorf("empty tool schema %s", r.Tools[2].Parameters)
	}
}

func TestGeminiThoughtSignaturePlaceholderForGemini3(t *testing.T) {
	srv := llmtest.NewGeminiServer(t)
	p := newGemini(t, srv, func(c *llm.GeminiConfig) { c.Model = "gemini-3-flash-preview" })
	_, err := p.Complete(context.Background(), llm.Request{Messages: []llm.Message{
		{Role: llm.RoleUser, Content: "go"},
		{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: "call_0", Name: "a"}, {ID: "call_1", Name: "b"}}},
		{Role: llm.RoleTool, ToolCallID: "call_0", Name: "a", Content: "1"},
		{Role: llm.RoleTool, ToolCallID: "call_1", Name: "b", Content: "2"},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	parts := srv.Requests()[0].Contents[1].Parts
	if len(parts) != 2 || string(parts[0].ThoughtSignature) != "skip_thought_signature_validator" || parts[1].ThoughtSignature != nil {
		t.Errorf("parts %+v", parts)
	}
}

func TestGeminiTwoToolCallsInOneStep(t *testing.T) {
	srv := llmtest.NewGeminiServer(t)
	srv.Enqueue(llmtest.Reply{Text: "Let me look.", ToolCalls: []llm.ToolCall{
		{Name: "read_file", Arguments: `{"path":"a.txt"}`},
		{Name: "list_files", Arguments: `{}`},
	}})
	p := newGemini(t, srv, nil)
	var rec tokenRecorder
	resp, err := p.Complete(context.Background(), userReq("look"), rec.on)
	if err != nil {
		t.Fatal(err)
	}
	want := []llm.ToolCall{
		{ID: "call_0", Name: "read_file", Arguments: `{"path":"a.txt"}`},
		{ID: "call_1", Name: "list_files", Arguments: `{}`},
	}
	if len(resp.ToolCalls) != 2 || resp.ToolCalls[0] != want[0] || resp.ToolCalls[1] != want[1] {
		t.Errorf("tool calls %+v, want %+v", resp.ToolCalls, want)
	}
	if resp.FinishReason != "tool_calls" || resp.Content != "Let me look." || strings.Join(rec.get(), "") != "Let me look." {
		t.Errorf("resp %+v tokens %q", resp, rec.get())
	}

	// Ids the API gives are kept.
	srv.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "fc-1", Name: "x", Arguments: `{"n":1}`}}})
	resp, err = p.Complete(context.Background(), userReq("again"), nil)
	if err != nil || len(resp.ToolCalls) != 1 || resp.ToolCalls[0].ID != "fc-1" {
		t.Errorf("resp %+v err %v", resp, err)
	}
}

func TestGeminiFinishReasons(t *testing.T) {
	srv := llmtest.NewGeminiServer(t)
	p := newGemini(t, srv, nil)
	for reason, want := range map[string]string{"MAX_TOKENS": "length", "SAFETY": "content_filter", "MALFORMED_FUNCTION_CALL": "malformed_function_call"} {
		srv.Enqueue(llmtest.Reply{Text: "x", FinishReason: reason})
		resp, err := p.Complete(context.Background(), userReq("q"), nil)
		if err != nil || resp.FinishReason != want {
			t.Errorf("%s: finish %q, want %q (err %v)", reason, resp.FinishReason, want, err)
		}
	}
}

func TestGeminiRetryAfterHonoured(t *testing.T) {
	srv := llmtest.NewGeminiServer(t)
	srv.Enqueue(llmtest.Reply{Status: 429, RetryAfter: "1", ErrorMessage: "Resource has been exhausted (e.g. check quota)."},
		llmtest.Reply{Text: "ok"})
	// MaxBackoff above Retry-After so the server's wish is what we wait.
	p := newGemini(t, srv, func(c *llm.GeminiConfig) { c.MaxBackoff = 5 * time.Second })
	start := time.Now()
	resp, err := p.Complete(context.Background(), userReq("q"), nil)
	if err != nil || resp.Content != "ok" {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Errorf("retried after %v; Retry-After asked for 1s", waited)
	}
	if n := srv.RequestCount(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestGeminiServerErrorThenSuccess(t *testing.T) {
	srv := llmtest.NewGeminiServer(t)
	srv.Enqueue(llmtest.Reply{Status: 500, ErrorMessage: "An internal error has occurred."},
		llmtest.Reply{Status: 503, ErrorMessage: "The model is overloaded."},
		llmtest.Reply{Text: "fine"})
	p := newGemini(t, srv, nil)
	resp, err := p.Complete(context.Background(), userReq("q"), nil)
	if err != nil || resp.Content != "fine" || srv.RequestCount() != 3 {
		t.Fatalf("resp %+v err %v requests %d", resp, err, srv.RequestCount())
	}
}

func TestGeminiErrorsMapped(t *testing.T) {
	srv := llmtest.NewGeminiServer(t, llmtest.WithGeminiAPIKey("right"))
	ctx := context.Background()

	// A wrong key: Google says 400 API_KEY_INVALID; that is ErrAuth, not retried.
	p := newGemini(t, srv, func(c *llm.GeminiConfig) { c.APIKey = "wrong" })
	_, err := p.Complete(ctx, userReq("q"), nil)
	if !errors.Is(err, llm.ErrAuth) || !strings.Contains(err.Error(), "API key not valid") || srv.RequestCount() != 1 {
		t.Errorf("wrong key: err %v after %d requests", err, srv.RequestCount())
	}

	p = newGemini(t, srv, nil)
	srv.Enqueue(llmtest.Reply{Status: 400, ErrorMessage: "* GenerateContentRequest.tools[0].function_declarations[0].name: Invalid function name."})
	_, err = p.Complete(ctx, userReq("q"), nil)
	if !errors.Is(err, llm.ErrBadRequest) || !strings.Contains(err.Error(), "Invalid function name.") || !strings.Contains(err.Error(), "INVALID_ARGUMENT") {
		t.Errorf("400: %v", err)
	}
	if srv.RequestCount() != 2 {
		t.Errorf("a 400 was retried: %d requests", srv.RequestCount())
	}

	srv.Enqueue(llmtest.Reply{Status: 403, ErrorMessage: "Permission denied."})
	if _, err = p.Complete(ctx, userReq("q"), nil); !errors.Is(err, llm.ErrAuth) {
		t.Errorf("403: %v", err)
	}

	p = newGemini(t, srv, func(c *llm.GeminiConfig) { c.MaxRetries = 2 })
	for range 3 {
		srv.Enqueue(llmtest.Reply{Status: 429, ErrorMessage: "Quota exceeded."})
	}
	before := srv.RequestCount()
	_, err = p.Complete(ctx, userReq("q"), nil)
	if !errors.Is(err, llm.ErrRateLimited) || !strings.Contains(err.Error(), "Quota exceeded.") || srv.RequestCount()-before != 3 {
		t.Errorf("429s: %v after %d requests", err, srv.RequestCount()-before)
	}
}

func TestGeminiStreamBreaks(t *testing.T) {
	srv := llmtest.NewGeminiServer(t)
	p := newGemini(t, srv, nil)
	ctx := context.Background()

	// Broken before any text: retried.
	srv.Enqueue(llmtest.Reply{Text: "abcdefgh", DropAfter: 0, StreamError: "boom"}, llmtest.Reply{Text: "ok"})
	resp, err := p.Complete(ctx, userReq("q"), nil)
	if err != nil || resp.Content != "ok" {
		t.Errorf("error event before tokens with no handler: resp %+v err %v", resp, err)
	}

	// Broken after text was streamed: not retried (the text is out).
	srv.Enqueue(llmtest.Reply{Text: "abcdefgh", DropAfter: 1})
	var rec tokenRecorder
	before := srv.RequestCount()
	_, err = p.Complete(ctx, userReq("q"), rec.on)
	if !errors.Is(err, llm.ErrUnavailable) || srv.RequestCount()-before != 1 || strings.Join(rec.get(), "") != "abcd" {
		t.Errorf("dropped stream: err %v requests %d tokens %q", err, srv.RequestCount()-before, rec.get())
	}
}

func TestGeminiIdleTimeoutAndCancel(t *testing.T) {
	srv := llmtest.NewGeminiServer(t)
	p := newGemini(t, srv, func(c *llm.GeminiConfig) { c.Timeout = 200 * time.Millisecond; c.MaxRetries = -1 })
	srv.Enqueue(llmtest.Reply{Text: "abcdefgh", StallAfter: 1})
	_, err := p.Complete(context.Background(), userReq("q"), nil)
	if !errors.Is(err, llm.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stall: %v", err)
	}

	p = newGemini(t, srv, nil)
	srv.Enqueue(llmtest.Reply{Delay: 10 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = p.Complete(ctx, userReq("q"), nil)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Errorf("cancel: %v after %v", err, time.Since(start))
	}

	// Cancel mid-stream, from the token callback.
	srv.Enqueue(llmtest.Reply{Text: strings.Repeat("slow ", 100), ChunkSize: 1, ChunkDelay: 50 * time.Millisecond})
	ctx, cancel = context.WithCancel(context.Background())
	start = time.Now()
	_, err = p.Complete(ctx, userReq("q"), func(string) { cancel() })
	if !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Errorf("cancel mid-stream: %v after %v", err, time.Since(start))
	}

	// Cancel while waiting out a Retry-After.
	srv.Enqueue(llmtest.Reply{Status: 429, RetryAfter: "30"})
	p = newGemini(t, srv, func(c *llm.GeminiConfig) { c.MaxBackoff = time.Minute })
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = p.Complete(ctx, userReq("q"), nil)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Errorf("cancel in backoff: %v after %v", err, time.Since(start))
	}
}

func TestGeminiNeedsKey(t *testing.T) {
	if _, err := llm.NewGemini(llm.GeminiConfig{}); err == nil || !strings.Contains(err.Error(), "GEMINI_API_KEY") {
		t.Errorf("no key: %v", err)
	}
	if _, err := llm.New(llm.Config{Provider: "gemini"}, nil); err == nil || !strings.Contains(err.Error(), "needs an API key") {
		t.Errorf("New without key: %v", err)
	}
	srv := llmtest.NewGeminiServer(t, llmtest.WithGeminiAPIKey("gk"))
	p, err := llm.New(llm.Config{Provider: "Gemini", GeminiAPIKey: "gk", GeminiBaseURL: srv.URL(), APIKey: "sk-openai"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Complete(context.Background(), userReq("ping"), nil)
	if err != nil || resp.Content != "echo: ping" || p.Name() != "gemini" {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if r := srv.Requests()[0]; r.APIKey != "gk" || r.Model != llm.DefaultGeminiModel {
		t.Errorf("key %q model %q", r.APIKey, r.Model)
	}
}

func TestGeminiConcurrent(t *testing.T) {
	srv := llmtest.NewGeminiServer(t)
	var seen sync.Map
	srv.SetDefault(func(r llmtest.GeminiRequest) llmtest.Reply {
		// Every fifth caller is throttled on its first attempt.
		if q := r.LastUserText(); (len(q)-1)%5 == 0 {
			if _, again := seen.LoadOrStore(q, true); !again {
				return llmtest.Reply{Status: 429, RetryAfter: "0.01"}
			}
		}
		return llmtest.GeminiEcho(r)
	})
	p := newGemini(t, srv, nil)
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			var rec tokenRecorder
			want := "echo: q" + strings.Repeat("x", i)
			resp, err := p.Complete(context.Background(), userReq("q"+strings.Repeat("x", i)), rec.on)
			switch {
			case err != nil:
				errs <- err
			case resp.Content != want || strings.Join(rec.get(), "") != want:
				errs <- errors.New("mixed up: " + resp.Content + " / " + strings.Join(rec.get(), ""))
			default:
				errs <- nil
			}
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := srv.RequestCount(); n != 24 {
		t.Errorf("%d requests, want 20 and 4 retries", n)
	}
}

// Requests Gemini could only refuse are refused here, without a call.
func TestGeminiRejectsUnsendableRequests(t *testing.T) {
	srv := llmtest.NewGeminiServer(t)
	p := newGemini(t, srv, nil)
	for name, req := range map[string]llm.Request{
		"only system": {Messages: []llm.Message{{Role: llm.RoleSystem, Content: "sys"}}},
		"bad schema":  {Messages: []llm.Message{{Role: llm.RoleUser, Content: "q"}}, Tools: []llm.ToolSpec{{Name: "t", Parameters: json.RawMessage(`{"type":`)}}},
	} {
		if _, err := p.Complete(context.Background(), req, nil); !errors.Is(err, llm.ErrBadRequest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := srv.RequestCount(); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

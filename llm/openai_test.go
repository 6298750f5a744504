package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
)

// newProvider returns a provider for srv with fast backoff; cfg fields override.
func newProvider(srv *llmtest.Server, mod func(*llm.OpenAIConfig)) *llm.OpenAI {
	cfg := llm.OpenAIConfig{
		BaseURL:     srv.URL(),
		APIKey:      srv.APIKey(),
		Model:       "test-model",
		Timeout:     5 * time.Second,
		BackoffBase: time.Millisecond,
		MaxBackoff:  20 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	return llm.NewOpenAI(cfg)
}

func userReq(text string) llm.Request {
	return llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: text}}}
}

// tokenRecorder collects streamed deltas.
type tokenRecorder struct {
	mu     sync.Mutex
	tokens []string
}

func (r *tokenRecorder) on(d string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens = append(r.tokens, d)
}

func (r *tokenRecorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.tokens...)
}

func TestOpenAIStreamsTextInOrder(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.WithAPIKey("sk-test"))
	text := "Hello, streaming world! Ünïcödé works too: 你好世界."
	srv.Enqueue(llmtest.Reply{Text: text, ChunkSize: 3, Model: "served-model"})
	p := newProvider(srv, nil)

	temp := 0.2
	req := llm.Request{
		Messages: []llm.Message{
			{Role: llm.RoleSystem, Content: "You are terse."},
			{Role: llm.RoleUser, Content: "read a.txt"},
			{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: "call_9", Name: "read_file", Arguments: `{"path":"a.txt"}`}}},
			{Role: llm.RoleTool, ToolCallID: "call_9", Name: "read_file", Content: "hello"},
			{Role: llm.RoleUser, Content: "thanks"},
		},
		Tools: []llm.ToolSpec{
			{Name: "read_file", Description: "Read a file", Parameters: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}`)},
			{Name: "export_trace", Description: "Export"},
		},
		Temperature: &temp,
		MaxTokens:   100,
	}
	var rec tokenRecorder
	resp, err := p.Complete(context.Background(), req, rec.on)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	tokens := rec.get()
	if len(tokens) < 10 {
		t.Errorf("got %d deltas, want many small ones: %q", len(tokens), tokens)
	}
	if got := strings.Join(tokens, ""); got != text {
		t.Errorf("joined deltas = %q, want %q", got, text)
	}
	if resp.Content != text {
		t.Errorf("Content = %q, want %q", resp.Content, text)
	}
	if resp.FinishReason != "stop" || len(resp.ToolCalls) != 0 {
		t.Errorf("finish %q, tool calls %v", resp.FinishReason, resp.ToolCalls)
	}
	if resp.Model != "served-model" {
		t.Errorf("Model = %q", resp.Model)
	}
	if resp.Usage.CompletionTokens == 0 || resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens {
		t.Errorf("Usage = %+v", resp.Usage)
	}

	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	got := reqs[0]
	if got.Authorization != "Bearer sk-test" || got.Model != "test-model" || !got.Stream || !got.IncludeUsage {
		t.Errorf("request: auth %q model %q stream %v usage %v", got.Authorization, got.Model, got.Stream, got.IncludeUsage)
	}
	if got.Temperature == nil || *got.Temperature != 0.2 || got.MaxTokens != 100 {
		t.Errorf("temperature %v max_tokens %d", got.Temperature, got.MaxTokens)
	}
	if len(got.Messages) != 5 {
		t.Fatalf("messages: %+v", got.Messages)
	}
	if tc := got.Messages[2].ToolCalls; len(tc) != 1 || tc[0] != req.Messages[2].ToolCalls[0] {
		t.Errorf("assistant tool_calls = %+v", tc)
	}
	if m := got.Messages[3]; m.Role != llm.RoleTool || m.ToolCallID != "call_9" || m.Content != "hello" {
		t.Errorf("tool message = %+v", m)
	}
	if len(got.Tools) != 2 || got.ToolTypes[0] != "function" || got.Tools[0].Name != "read_file" ||
		!strings.Contains(string(got.Tools[0].Parameters), `"required":["path"]`) {
		t.Errorf("tools = %+v %v", got.Tools, got.ToolTypes)
	}
	if string(got.Tools[1].Parameters) != `{"type":"object","properties":{}}` {
		t.Errorf("empty parameters sent as %s", got.Tools[1].Parameters)
	}
	body := string(got.Body)
	for _, want := range []string{`"stream":true`, `"stream_options":{"include_usage":true}`, `"content":null`, `"tool_call_id":"call_9"`, `"type":"function"`} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s: %s", want, body)
		}
	}
}

func TestOpenAIToolCallsReassembled(t *testing.T) {
	srv := llmtest.NewServer(t)
	calls := []llm.ToolCall{
		{ID: "call_a", Name: "read_file", Arguments: `{"path":"docs/README.md","max_bytes":4096}`},
		{ID: "call_b", Name: "memory_write", Arguments: `{"text":"the user likes \"quoted\" text, ünïcode","type":"episodic"}`},
	}
	srv.Enqueue(llmtest.Reply{ToolCalls: calls, ChunkSize: 2, InterleaveToolCalls: true})
	srv.Enqueue(llmtest.Reply{Text: "Let me look.", ToolCalls: calls, ChunkSize: 5})

	var rec tokenRecorder
	resp, err := newProvider(srv, nil).Complete(context.Background(), userReq("go"), rec.on)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.get()) != 0 || resp.Content != "" {
		t.Errorf("unexpected text %q / %q", rec.get(), resp.Content)
	}
	if resp.FinishReason != "tool_calls" {
		t.Errorf("FinishReason = %q", resp.FinishReason)
	}
	if len(resp.ToolCalls) != 2 || resp.ToolCalls[0] != calls[0] || resp.ToolCalls[1] != calls[1] {
		t.Fatalf("ToolCalls = %#v\nwant %#v", resp.ToolCalls, calls)
	}
	for _, c := range resp.ToolCalls {
		if !json.Valid([]byte(c.Arguments)) {
			t.Errorf("arguments not valid JSON: %s", c.Arguments)
		}
	}

	// Text and tool calls in one answer.
	resp, err = newProvider(srv, nil).Complete(context.Background(), userReq("go"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "Let me look." || len(resp.ToolCalls) != 2 || resp.ToolCalls[1] != calls[1] {
		t.Errorf("resp = %+v", resp)
	}
}

func TestOpenAIRetriesRateLimitThenSucceeds(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Enqueue(llmtest.Reply{Status: http.StatusTooManyRequests, ErrorMessage: "slow down"},
		llmtest.Reply{Status: http.StatusTooManyRequests, RetryAfter: "0"},
		llmtest.Reply{Text: "finally"})
	resp, err := newProvider(srv, nil).Complete(context.Background(), userReq("hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "finally" {
		t.Errorf("Content = %q", resp.Content)
	}
	if n := srv.RequestCount(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestOpenAIHonoursRetryAfter(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Enqueue(llmtest.Reply{Status: http.StatusTooManyRequests, RetryAfter: "1"}, llmtest.Reply{Text: "ok"})
	p := newProvider(srv, func(c *llm.OpenAIConfig) { c.MaxBackoff = 5 * time.Second })
	start := time.Now()
	if _, err := p.Complete(context.Background(), userReq("hi"), nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("retried after %v, want about 1s (Retry-After)", d)
	}
}

func TestOpenAIRateLimitExhausted(t *testing.T) {
	srv := llmtest.NewServer(t)
	for range 3 {
		srv.Enqueue(llmtest.Reply{Status: http.StatusTooManyRequests, ErrorMessage: "quota exceeded"})
	}
	_, err := newProvider(srv, func(c *llm.OpenAIConfig) { c.MaxRetries = 2 }).Complete(context.Background(), userReq("hi"), nil)
	if !errors.Is(err, llm.ErrRateLimited) || !strings.Contains(err.Error(), "quota exceeded") {
		t.Fatalf("err = %v, want ErrRateLimited with message", err)
	}
	if n := srv.RequestCount(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestOpenAIServerErrorsExhaustRetries(t *testing.T) {
	srv := llmtest.NewServer(t)
	for range 3 {
		srv.Enqueue(llmtest.Reply{Status: http.StatusInternalServerError, ErrorMessage: "engine overloaded"})
	}
	srv.Enqueue(llmtest.Reply{Text: "too late"})
	_, err := newProvider(srv, func(c *llm.OpenAIConfig) { c.MaxRetries = 2 }).Complete(context.Background(), userReq("hi"), nil)
	if !errors.Is(err, llm.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "engine overloaded") || !strings.Contains(err.Error(), "500") {
		t.Errorf("err = %v, want status and message", err)
	}
	if n := srv.RequestCount(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestOpenAIDefaultMaxRetries(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(llmtest.ChatRequest) llmtest.Reply { return llmtest.Reply{Status: http.StatusBadGateway} })
	_, err := newProvider(srv, nil).Complete(context.Background(), userReq("hi"), nil)
	if !errors.Is(err, llm.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if n := srv.RequestCount(); n != 1+llm.DefaultMaxRetries {
		t.Errorf("%d requests, want %d", n, 1+llm.DefaultMaxRetries)
	}
}

func TestOpenAIAuthErrorNotRetried(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.WithAPIKey("sk-right"))
	p := newProvider(srv, func(c *llm.OpenAIConfig) { c.APIKey = "sk-wrong" })
	_, err := p.Complete(context.Background(), userReq("hi"), nil)
	if !errors.Is(err, llm.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if !strings.Contains(err.Error(), "Incorrect API key provided") {
		t.Errorf("provider message lost: %v", err)
	}
	if n := srv.RequestCount(); n != 1 {
		t.Errorf("%d requests, want 1 (no retry)", n)
	}
	if got := srv.Requests()[0].Authorization; got != "Bearer sk-wrong" {
		t.Errorf("Authorization = %q", got)
	}

	srv.Enqueue(llmtest.Reply{Status: http.StatusForbidden, ErrorMessage: "model access denied"})
	_, err = newProvider(srv, nil).Complete(context.Background(), userReq("hi"), nil)
	if !errors.Is(err, llm.ErrAuth) || !strings.Contains(err.Error(), "model access denied") {
		t.Errorf("403: err = %v", err)
	}
}

func TestOpenAIBadRequestNotRetried(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Enqueue(llmtest.Reply{Status: http.StatusNotFound, ErrorMessage: "The model `nope` does not exist"})
	_, err := newProvider(srv, nil).Complete(context.Background(), userReq("hi"), nil)
	if !errors.Is(err, llm.ErrBadRequest) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v", err)
	}
	if n := srv.RequestCount(); n != 1 {
		t.Errorf("%d requests", n)
	}

	if _, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.URL()}).Complete(context.Background(), userReq("hi"), nil); !errors.Is(err, llm.ErrBadRequest) {
		t.Errorf("no model: err = %v", err)
	}
}

func TestOpenAIRetriesWithoutStreamOptions(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Enqueue(llmtest.Reply{Status: http.StatusBadRequest, ErrorMessage: "Unrecognized request argument supplied: stream_options"})
	p := newProvider(srv, func(c *llm.OpenAIConfig) { c.MaxRetries = -1 })
	resp, err := p.Complete(context.Background(), userReq("hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "echo: hi" {
		t.Errorf("Content = %q", resp.Content)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || !reqs[0].IncludeUsage || reqs[1].IncludeUsage || strings.Contains(string(reqs[1].Body), "stream_options") {
		t.Errorf("requests: %d, include_usage %v", len(reqs), reqs)
	}
	// Remembered for later calls.
	if _, err := p.Complete(context.Background(), userReq("again"), nil); err != nil {
		t.Fatal(err)
	}
	if r := srv.Requests(); len(r) != 3 || r[2].IncludeUsage {
		t.Errorf("third request still sends stream_options")
	}
}

func TestOpenAICancelMidStream(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Enqueue(llmtest.Reply{Text: strings.Repeat("word ", 200), ChunkSize: 5, ChunkDelay: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelledAt time.Time
	var once sync.Once
	_, err := newProvider(srv, nil).Complete(ctx, userReq("hi"), func(string) {
		once.Do(func() { cancelledAt = time.Now(); cancel() })
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(cancelledAt); d > 500*time.Millisecond {
		t.Errorf("returned %v after cancel", d)
	}
	if n := srv.RequestCount(); n != 1 {
		t.Errorf("%d requests", n)
	}
}

func TestOpenAICancelWhileWaiting(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Enqueue(llmtest.Reply{Text: "late", Delay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := newProvider(srv, nil).Complete(ctx, userReq("hi"), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}

	// Cancelled during the backoff between retries.
	srv.Enqueue(llmtest.Reply{Status: http.StatusServiceUnavailable})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	p := newProvider(srv, func(c *llm.OpenAIConfig) { c.BackoffBase = 10 * time.Second; c.MaxBackoff = 10 * time.Second })
	start = time.Now()
	if _, err := p.Complete(ctx2, userReq("hi"), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
}

func TestOpenAIIdleTimeout(t *testing.T) {
	srv := llmtest.NewServer(t)
	// Role chunk and one content chunk, then silence.
	srv.Enqueue(llmtest.Reply{Text: "partial answer", ChunkSize: 4, StallAfter: 2})
	p := newProvider(srv, func(c *llm.OpenAIConfig) { c.Timeout = 200 * time.Millisecond })
	var rec tokenRecorder
	start := time.Now()
	_, err := p.Complete(context.Background(), userReq("hi"), rec.on)
	if !errors.Is(err, llm.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if got := strings.Join(rec.get(), ""); got != "part" {
		t.Errorf("streamed %q", got)
	}
	if n := srv.RequestCount(); n != 1 {
		t.Errorf("%d requests: retried after text was streamed", n)
	}
}

func TestOpenAIStallBeforeTokensIsRetried(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.Enqueue(llmtest.Reply{Text: "x", StallAfter: 1}) // only the role chunk
	srv.Enqueue(llmtest.Reply{Text: "x", Delay: time.Second})
	srv.Enqueue(llmtest.Reply{Text: "recovered"})
	p := newProvider(srv, func(c *llm.OpenAIConfig) { c.Timeout = 150 * time.Millisecond })
	resp, err := p.Complete(context.Background(), userReq("hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "recovered" || srv.RequestCount() != 3 {
		t.Errorf("content %q after %d requests", resp.Content, srv.RequestCount())
	}
}

func TestOpenAIBrokenStream(t *testing.T) {
	srv := llmtest.NewServer(t)
	// Broken before any text: retried.
	srv.Enqueue(llmtest.Reply{Text: "hello", DropAfter: 1}, llmtest.Reply{Text: "hello"})
	resp, err := newProvider(srv, nil).Complete(context.Background(), userReq("hi"), nil)
	if err != nil || resp.Content != "hello" || srv.RequestCount() != 2 {
		t.Fatalf("resp %+v err %v requests %d", resp, err, srv.RequestCount())
	}
	// Broken after text: an error, not retried.
	srv.Enqueue(llmtest.Reply{Text: "hello world", ChunkSize: 2, DropAfter: 3})
	_, err = newProvider(srv, nil).Complete(context.Background(), userReq("hi"), func(string) {})
	if !errors.Is(err, llm.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if srv.RequestCount() != 3 {
		t.Errorf("requests %d, want 3 (no retry after text)", srv.RequestCount())
	}
	// An error event inside the stream.
	srv.Enqueue(llmtest.Reply{Text: "abc", StreamError: "The server had an error while processing your request."})
	_, err = newProvider(srv, func(c *llm.OpenAIConfig) { c.MaxRetries = -1 }).Complete(context.Background(), userReq("hi"), nil)
	if !errors.Is(err, llm.ErrUnavailable) || !strings.Contains(err.Error(), "had an error") {
		t.Errorf("err = %v", err)
	}
}

func TestOpenAINonStreamingFallback(t *testing.T) {
	srv := llmtest.NewServer(t)
	calls := []llm.ToolCall{{ID: "c1", Name: "read_file", Arguments: `{"path":"x.go"}`}}
	srv.Enqueue(llmtest.Reply{JSON: true, Text: "whole answer at once", Usage: &llm.Usage{PromptTokens: 7, CompletionTokens: 4, TotalTokens: 11}})
	srv.Enqueue(llmtest.Reply{JSON: true, ToolCalls: calls})
	p := newProvider(srv, nil)
	var rec tokenRecorder
	resp, err := p.Complete(context.Background(), userReq("hi"), rec.on)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "whole answer at once" || resp.FinishReason != "stop" || resp.Usage.TotalTokens != 11 {
		t.Errorf("resp = %+v", resp)
	}
	if got := rec.get(); len(got) != 1 || got[0] != resp.Content {
		t.Errorf("tokens = %q", got)
	}
	resp, err = p.Complete(context.Background(), userReq("hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ToolCalls) != 1 || resp.ToolCalls[0] != calls[0] || resp.FinishReason != "tool_calls" {
		t.Errorf("resp = %+v", resp)
	}
}

// TestOpenAIWireQuirks feeds a hand-written stream with the liberties real
// servers take: keep-alive comments, "data:" without a space, events without
// blank lines between them, tool calls without index, no usage, no [DONE].
func TestOpenAIWireQuirks(t *testing.T) {
	stream := strings.Join([]string{
		": keep-alive",
		"",
		`data:{"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}`,
		`data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}`,
		`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}}]}`,
		`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"1}"}}]}}]}`,
		"event: ignored",
		`data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		"",
	}, "\n")
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		_, _ = io.WriteString(w, stream)
	}))
	defer hs.Close()
	p := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: hs.URL + "/v1/", Model: "m", MaxRetries: -1})
	if p.Endpoint() != hs.URL+"/v1/chat/completions" {
		t.Errorf("Endpoint = %s", p.Endpoint())
	}
	resp, err := p.Complete(context.Background(), userReq("hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := llm.ToolCall{ID: "t1", Name: "f", Arguments: `{"a":1}`}
	if resp.Content != "Hi" || len(resp.ToolCalls) != 1 || resp.ToolCalls[0] != want || resp.FinishReason != "tool_calls" || resp.Model != "m" {
		t.Errorf("resp = %+v", resp)
	}
}

func TestOpenAIConnectionRefused(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close()
	p := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: url + "/v1", Model: "m", MaxRetries: 2, BackoffBase: time.Millisecond})
	_, err := p.Complete(context.Background(), userReq("hi"), nil)
	if !errors.Is(err, llm.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

func TestOpenAIConcurrent(t *testing.T) {
	srv := llmtest.NewServer(t)
	p := newProvider(srv, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			msg := fmt.Sprintf("message %d", i)
			resp, err := p.Complete(context.Background(), userReq(msg), nil)
			if err == nil && resp.Content != "echo: "+msg {
				err = fmt.Errorf("got %q for %q", resp.Content, msg)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := srv.RequestCount(); n != 20 {
		t.Errorf("%d requests", n)
	}
}

// TestOpenAIKeepsConnectionsForConcurrentCalls: calls made several at a time
// reuse the connections of the calls before them; Go's default of two idle
// connections a host made each round beyond two dial anew.
func TestOpenAIKeepsConnectionsForConcurrentCalls(t *testing.T) {
	const inFlight, rounds = 8, 4
	var mu sync.Mutex
	dialled := 0
	release := make(chan struct{})
	var arrived sync.WaitGroup
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived.Done()
		<-release // every call of a round is in flight at once
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}))
	hs.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			mu.Lock()
			dialled++
			mu.Unlock()
		}
	}
	hs.Start()
	defer hs.Close()
	p := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: hs.URL + "/v1", Model: "m", MaxRetries: -1})
	for round := range rounds {
		arrived.Add(inFlight)
		release = make(chan struct{})
		errs := make(chan error, inFlight)
		for range inFlight {
			go func() {
				_, err := p.Complete(context.Background(), userReq("hi"), nil)
				errs <- err
			}()
		}
		arrived.Wait()
		close(release)
		for range inFlight {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if dialled > inFlight {
		t.Fatalf("%d connections for %d rounds of %d calls at once, want at most %d", dialled, rounds, inFlight, inFlight)
	}
}

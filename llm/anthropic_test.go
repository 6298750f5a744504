package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
)

func newAnthropic(srv *llmtest.Server, mod func(*llm.AnthropicConfig)) *llm.Anthropic {
	cfg := llm.AnthropicConfig{BaseURL: srv.AnthropicURL(), APIKey: srv.APIKey(), Model: "claude-test", Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	return llm.NewAnthropic(cfg)
}

var readFileSpec = llm.ToolSpec{Name: "read_file", Description: "Read a file",
	Parameters: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}`)}

func TestAnthropicStreamsAnswer(t *testing.T) {
	srv := llmtest.NewAnthropicServer(t, llmtest.WithAPIKey("sk-ant"))
	srv.Enqueue(llmtest.Reply{Text: "Hello from Claude, streamed.", ChunkSize: 5})
	var rec tokenRecorder
	resp, err := newAnthropic(srv, nil).Complete(context.Background(), llm.Request{Messages: []llm.Message{
		{Role: llm.RoleSystem, Content: "You are terse."}, {Role: llm.RoleUser, Content: "hi"},
	}}, rec.on)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "Hello from Claude, streamed." || resp.FinishReason != "stop" || resp.Model != "claude-test" || resp.Provider != "anthropic" {
		t.Errorf("resp = %+v", resp)
	}
	if got := rec.get(); len(got) < 2 || strings.Join(got, "") != resp.Content {
		t.Errorf("tokens = %q", got)
	}
	if resp.Usage.CompletionTokens == 0 || resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens {
		t.Errorf("usage = %+v", resp.Usage)
	}
	req := srv.Requests()[0]
	if req.APIKey != "sk-ant" || !req.Stream || req.MaxTokens != llm.DefaultAnthropicMaxTokens || req.Messages[0].Role != llm.RoleSystem {
		t.Errorf("request = %+v", req)
	}
}

func TestAnthropicToolCallThenAnswer(t *testing.T) {
	srv := llmtest.NewAnthropicServer(t)
	srv.Enqueue(llmtest.Reply{Text: "Let me look.", ToolCalls: []llm.ToolCall{{ID: "toolu_a", Name: "read_file", Arguments: `{"path":"notes/a.txt"}`}}, ChunkSize: 3},
		llmtest.Reply{Text: "It says hello."})
	p := newAnthropic(srv, nil)
	msgs := []llm.Message{{Role: llm.RoleSystem, Content: "sys"}, {Role: llm.RoleUser, Content: "read a"}}
	resp, err := p.Complete(context.Background(), llm.Request{Messages: msgs, Tools: []llm.ToolSpec{readFileSpec}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ToolCalls) != 1 || resp.ToolCalls[0] != (llm.ToolCall{ID: "toolu_a", Name: "read_file", Arguments: `{"path":"notes/a.txt"}`}) ||
		resp.FinishReason != "tool_calls" || resp.Content != "Let me look." {
		t.Fatalf("resp = %+v", resp)
	}
	msgs = append(msgs, llm.Message{Role: llm.RoleAssistant, Content: resp.Content, ToolCalls: resp.ToolCalls},
		llm.Message{Role: llm.RoleTool, ToolCallID: "toolu_a", Name: "read_file", Content: "hello"})
	resp, err = p.Complete(context.Background(), llm.Request{Messages: msgs, Tools: []llm.ToolSpec{readFileSpec}}, nil)
	if err != nil || resp.Content != "It says hello." {
		t.Fatalf("resp = %+v, %v", resp, err)
	}
	second := srv.Requests()[1]
	// The server decoded the tool_use and tool_result blocks back.
	if n := len(second.Messages); n != 4 || second.Messages[2].ToolCalls[0].ID != "toolu_a" ||
		second.Messages[3].Role != llm.RoleTool || second.Messages[3].ToolCallID != "toolu_a" || second.Messages[3].Content != "hello" {
		t.Errorf("history sent = %+v", second.Messages)
	}
	if second.Tools[0].Name != "read_file" || !strings.Contains(string(second.Tools[0].Parameters), `"required":["path"]`) {
		t.Errorf("tools = %+v", second.Tools)
	}
}

func TestAnthropicTwoToolCallsOneStepMergesResults(t *testing.T) {
	srv := llmtest.NewAnthropicServer(t)
	srv.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{
		{ID: "toolu_1", Name: "read_file", Arguments: `{"path":"a"}`},
		{ID: "toolu_2", Name: "read_file", Arguments: `{"path":"b"}`},
	}}, llmtest.Reply{Text: "done"})
	p := newAnthropic(srv, nil)
	msgs := []llm.Message{{Role: llm.RoleUser, Content: "read both"}}
	resp, err := p.Complete(context.Background(), llm.Request{Messages: msgs, Tools: []llm.ToolSpec{readFileSpec}}, nil)
	if err != nil || len(resp.ToolCalls) != 2 || resp.ToolCalls[1].Arguments != `{"path":"b"}` {
		t.Fatalf("resp = %+v, %v", resp, err)
	}
	msgs = append(msgs, llm.Message{Role: llm.RoleAssistant, ToolCalls: resp.ToolCalls},
		llm.Message{Role: llm.RoleTool, ToolCallID: "toolu_1", Content: "A"},
		llm.Message{Role: llm.RoleTool, ToolCallID: "toolu_2", Content: "B"})
	if _, err := p.Complete(context.Background(), llm.Request{Messages: msgs, Tools: []llm.ToolSpec{readFileSpec}}, nil); err != nil {
		t.Fatal(err)
	}
	// Both results went in one user turn after the assistant turn.
	var wire struct {
		Messages []struct {
			Role    string            `json:"role"`
			Content []json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(srv.Requests()[1].Body, &wire); err != nil {
		t.Fatal(err)
	}
	if len(wire.Messages) != 3 || wire.Messages[2].Role != "user" || len(wire.Messages[2].Content) != 2 ||
		!strings.Contains(string(wire.Messages[2].Content[1]), `"tool_use_id":"toolu_2"`) {
		t.Errorf("turns = %s", srv.Requests()[1].Body)
	}
}

func TestAnthropicRetryAfter429(t *testing.T) {
	srv := llmtest.NewAnthropicServer(t)
	srv.Enqueue(llmtest.Reply{Status: 429, RetryAfter: "1", ErrorMessage: "Number of request tokens has exceeded your rate limit"},
		llmtest.Reply{Text: "ok"})
	start := time.Now()
	resp, err := newAnthropic(srv, nil).Complete(context.Background(), userReq("hi"), nil)
	if err != nil || resp.Content != "ok" {
		t.Fatalf("resp = %+v, %v", resp, err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("answered after %s: Retry-After: 1 was not honoured", waited)
	}
	if n := srv.RequestCount(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestAnthropic500ThenSuccessAndExhaustedRetries(t *testing.T) {
	srv := llmtest.NewAnthropicServer(t)
	srv.Enqueue(llmtest.Reply{Status: 500, RetryAfter: "0"}, llmtest.Reply{Text: "recovered"})
	resp, err := newAnthropic(srv, nil).Complete(context.Background(), userReq("hi"), nil)
	if err != nil || resp.Content != "recovered" {
		t.Fatalf("resp = %+v, %v", resp, err)
	}
	// MaxRetries is the SDK's count: 1 retry means 2 attempts, then ErrUnavailable.
	srv.Enqueue(llmtest.Reply{Status: 529, RetryAfter: "0"}, llmtest.Reply{Status: 529, RetryAfter: "0"}, llmtest.Reply{Text: "never"})
	before := srv.RequestCount()
	_, err = newAnthropic(srv, func(c *llm.AnthropicConfig) { c.MaxRetries = 1 }).Complete(context.Background(), userReq("hi"), nil)
	if !errors.Is(err, llm.ErrUnavailable) || !strings.Contains(err.Error(), "Overloaded") {
		t.Errorf("err = %v", err)
	}
	if n := srv.RequestCount() - before; n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
}

func TestAnthropicErrorsMapped(t *testing.T) {
	srv := llmtest.NewAnthropicServer(t, llmtest.WithAPIKey("right"))
	_, err := newAnthropic(srv, func(c *llm.AnthropicConfig) { c.APIKey = "wrong" }).Complete(context.Background(), userReq("hi"), nil)
	if !errors.Is(err, llm.ErrAuth) || !strings.Contains(err.Error(), "invalid x-api-key") {
		t.Errorf("auth err = %v", err)
	}
	srv.Enqueue(llmtest.Reply{Status: 400, ErrorMessage: "prompt is too long: 210000 tokens > 200000 maximum"})
	before := srv.RequestCount()
	_, err = newAnthropic(srv, nil).Complete(context.Background(), userReq("hi"), nil)
	if !errors.Is(err, llm.ErrBadRequest) || !strings.Contains(err.Error(), "prompt is too long") {
		t.Errorf("400 err = %v", err)
	}
	if n := srv.RequestCount() - before; n != 1 {
		t.Errorf("a 400 was sent %d times", n)
	}
	// An error event inside a 200 stream before any text: retried.
	srv.Enqueue(llmtest.Reply{StreamError: "Overloaded"}, llmtest.Reply{Text: "second try"})
	resp, err := newAnthropic(srv, nil).Complete(context.Background(), userReq("hi"), nil)
	if err != nil || resp.Content != "second try" {
		t.Errorf("after stream error: %+v, %v", resp, err)
	}
	// A stream cut before message_stop is an ErrUnavailable, not a short answer.
	srv.Enqueue(llmtest.Reply{Text: "partial answer", DropAfter: 4})
	_, err = newAnthropic(srv, func(c *llm.AnthropicConfig) { c.MaxRetries = -1 }).Complete(context.Background(), userReq("hi"), func(string) {})
	if !errors.Is(err, llm.ErrUnavailable) {
		t.Errorf("dropped stream err = %v", err)
	}
}

func TestAnthropicIdleTimeout(t *testing.T) {
	srv := llmtest.NewAnthropicServer(t)
	srv.Enqueue(llmtest.Reply{Text: "will stall here", StallAfter: 3})
	start := time.Now()
	_, err := newAnthropic(srv, func(c *llm.AnthropicConfig) { c.Timeout = 200 * time.Millisecond; c.MaxRetries = -1 }).
		Complete(context.Background(), userReq("hi"), func(string) {})
	if !errors.Is(err, llm.ErrUnavailable) {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a stalled stream took %s to fail", d)
	}
}

func TestAnthropicPromptCache(t *testing.T) {
	srv := llmtest.NewAnthropicServer(t)
	p := newAnthropic(srv, nil)
	tools := []llm.ToolSpec{readFileSpec, {Name: "export_trace", Description: "Export", Parameters: json.RawMessage(`{"type":"object","properties":{}}`)}}
	turn := func(input string) llm.Response {
		resp, err := p.Complete(context.Background(), llm.Request{Tools: tools, Messages: []llm.Message{
			{Role: llm.RoleSystem, Content: "You are the agent. Core memory: the user likes tea and short answers."},
			{Role: llm.RoleSystem, Content: "Relevant memories: " + input},
			{Role: llm.RoleUser, Content: input},
		}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first, second := turn("first question"), turn("second question")
	reqs := srv.Requests()
	for i, r := range reqs {
		if !slices.Equal(r.CacheControl, []string{"tools[1]", "system[0]"}) {
			t.Errorf("request %d: cache_control at %v, want the last tool and the first system block", i, r.CacheControl)
		}
	}
	if first.Usage.CacheWriteTokens == 0 || first.Usage.CacheReadTokens != 0 {
		t.Errorf("first turn usage = %+v", first.Usage)
	}
	if second.Usage.CacheReadTokens != first.Usage.CacheWriteTokens || second.Usage.CacheWriteTokens != 0 {
		t.Errorf("second turn usage = %+v, want the prefix read from the cache", second.Usage)
	}
	if second.Usage.PromptTokens < second.Usage.CacheReadTokens {
		t.Errorf("prompt tokens %d do not include the cached ones", second.Usage.PromptTokens)
	}
}

func TestAnthropicThinkingRoundTrip(t *testing.T) {
	srv := llmtest.NewAnthropicServer(t)
	srv.Enqueue(llmtest.Reply{Thinking: "The user wants file a; I should read it.", ToolCalls: []llm.ToolCall{{ID: "toolu_t", Name: "read_file", Arguments: `{"path":"a"}`}}},
		llmtest.Reply{Text: "done"})
	p := newAnthropic(srv, func(c *llm.AnthropicConfig) { c.ThinkingBudget = 2048 })
	msgs := []llm.Message{{Role: llm.RoleUser, Content: "read a"}}
	var rec tokenRecorder
	resp, err := p.Complete(context.Background(), llm.Request{Messages: msgs, Tools: []llm.ToolSpec{readFileSpec}}, rec.on)
	if err != nil {
		t.Fatal(err)
	}
	want := llm.Thinking{Provider: "anthropic", Text: "The user wants file a; I should read it.", Signature: "sig:The user wants file a; I should read it."}
	if len(resp.Thinking) != 1 || resp.Thinking[0] != want || resp.Content != "" {
		t.Fatalf("resp = %+v", resp)
	}
	if strings.Contains(strings.Join(rec.get(), ""), "user wants") {
		t.Error("thinking was streamed as answer text")
	}
	// Round trip through JSON, as a checkpoint does.
	raw, _ := json.Marshal(llm.Message{Role: llm.RoleAssistant, ToolCalls: resp.ToolCalls, Thinking: resp.Thinking})
	var answer llm.Message
	if err := json.Unmarshal(raw, &answer); err != nil {
		t.Fatal(err)
	}
	msgs = append(msgs, answer, llm.Message{Role: llm.RoleTool, ToolCallID: "toolu_t", Content: "A"})
	if _, err := p.Complete(context.Background(), llm.Request{Messages: msgs, Tools: []llm.ToolSpec{readFileSpec}}, nil); err != nil {
		t.Fatal(err)
	}
	second := srv.Requests()[1]
	if got := second.Messages[1].Thinking; len(got) != 1 || got[0] != want || second.Messages[1].Content != "" {
		t.Errorf("thinking sent back as %+v (content %q)", got, second.Messages[1].Content)
	}
	var wire struct {
		Thinking struct {
			Type         string `json:"type"`
			BudgetTokens int    `json:"budget_tokens"`
		} `json:"thinking"`
		MaxTokens int `json:"max_tokens"`
	}
	_ = json.Unmarshal(second.Body, &wire)
	if wire.Thinking.Type != "enabled" || wire.Thinking.BudgetTokens != 2048 || wire.MaxTokens <= 2048 {
		t.Errorf("thinking config sent: %+v", wire)
	}
	// Another provider's thinking is not sent to Anthropic.
	msgs[1].Thinking = []llm.Thinking{{Provider: "other", Text: "x", Signature: "y"}}
	srv.Enqueue(llmtest.Reply{Text: "ok"})
	if _, err := p.Complete(context.Background(), llm.Request{Messages: msgs}, nil); err != nil {
		t.Fatal(err)
	}
	if got := srv.Requests()[2].Messages[1].Thinking; len(got) != 0 {
		t.Errorf("foreign thinking sent: %+v", got)
	}
}

func TestOldCheckpointMessageDecodes(t *testing.T) {
	// A message stored before Thinking existed decodes unchanged.
	var m llm.Message
	if err := json.Unmarshal([]byte(`{"role":"assistant","content":"hi","tool_calls":[{"id":"c","name":"n","arguments":"{}"}]}`), &m); err != nil ||
		m.Content != "hi" || len(m.ToolCalls) != 1 || m.Thinking != nil {
		t.Errorf("decoded %+v, %v", m, err)
	}
}

func TestNewAnthropicNeedsKey(t *testing.T) {
	if _, err := llm.New(llm.Config{Provider: "anthropic"}, nil); err == nil || !strings.Contains(err.Error(), "API key") {
		t.Errorf("err = %v", err)
	}
	p, err := llm.New(llm.Config{Provider: "anthropic", APIKey: "k"}, nil)
	if err != nil || p.Name() != "anthropic" {
		t.Errorf("p = %v, %v", p, err)
	}
}

func TestAnthropicRetryAfterCapped(t *testing.T) {
	srv := llmtest.NewAnthropicServer(t)
	srv.Enqueue(llmtest.Reply{Status: 529, RetryAfter: "3600"}, llmtest.Reply{Text: "ok"})
	start := time.Now()
	resp, err := newAnthropic(srv, func(c *llm.AnthropicConfig) { c.MaxBackoff = 50 * time.Millisecond }).
		Complete(context.Background(), userReq("hi"), nil)
	if err != nil || resp.Content != "ok" {
		t.Fatalf("resp = %+v, %v", resp, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("waited %s for a Retry-After of an hour capped at 50ms", d)
	}
}

package llmtest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
)

func TestServerRawWireFormat(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.WithAPIKey("k"))
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") || !strings.HasSuffix(srv.URL(), "/v1") {
		t.Errorf("URL = %s", srv.URL())
	}
	srv.Enqueue(llmtest.Reply{Text: "abcdef", ChunkSize: 2,
		ToolCalls: []llm.ToolCall{{Name: "t", Arguments: `{"x":1}`}, {Name: "u", Arguments: `{}`}}})
	body := `{"model":"m","stream":true,"stream_options":{"include_usage":true},
		"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	var events []string
	for _, block := range strings.Split(strings.TrimSpace(string(raw)), "\n\n") {
		if !strings.HasPrefix(block, "data: ") {
			t.Fatalf("bad event %q", block)
		}
		events = append(events, strings.TrimPrefix(block, "data: "))
	}
	if events[len(events)-1] != "[DONE]" {
		t.Errorf("last event %q", events[len(events)-1])
	}
	var usage struct {
		Choices []any      `json:"choices"`
		Usage   *llm.Usage `json:"usage"`
	}
	if err := json.Unmarshal([]byte(events[len(events)-2]), &usage); err != nil || usage.Usage == nil || len(usage.Choices) != 0 {
		t.Errorf("usage chunk %s: %v", events[len(events)-2], err)
	}
	for _, want := range []string{`"delta":{"content":"ab"}`, `"index":1,"id":"call_1","type":"function","function":{"name":"u","arguments":""}`, `"finish_reason":"tool_calls"`, `"object":"chat.completion.chunk"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("stream lacks %s:\n%s", want, raw)
		}
	}
	if got := srv.Requests()[0].LastUserMessage(); got != "hi" {
		t.Errorf("content parts decoded as %q", got)
	}
}

func TestServerAuthAndRouting(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.WithAPIKey("k"))
	for _, tc := range []struct {
		method, path, auth string
		status             int
	}{
		{http.MethodPost, "/v1/chat/completions", "", http.StatusUnauthorized},
		{http.MethodPost, "/v1/chat/completions", "Bearer wrong", http.StatusUnauthorized},
		{http.MethodPost, "/v1/completions", "Bearer k", http.StatusNotFound},
		{http.MethodGet, "/v1/models", "", http.StatusOK},
	} {
		req, _ := http.NewRequest(tc.method, strings.TrimSuffix(srv.URL(), "/v1")+tc.path, strings.NewReader(`{"model":"m","messages":[]}`))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct {
				Message string `json:"message"`
				Code    string `json:"code"`
			} `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		if tc.status == http.StatusUnauthorized && e.Error.Code != "invalid_api_key" {
			t.Errorf("401 body: %+v", e)
		}
	}
}

func TestToolThenText(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(llmtest.ToolThenText("echo", `{"text":"x"}`, "done"))
	p := srv.Provider()
	req := llm.Request{
		Messages: []llm.Message{{Role: llm.RoleUser, Content: "go"}},
		Tools:    []llm.ToolSpec{{Name: "echo"}},
	}
	resp, err := p.Complete(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ToolCalls) != 1 || resp.ToolCalls[0].Name != "echo" || resp.ToolCalls[0].Arguments != `{"text":"x"}` {
		t.Fatalf("first answer %+v", resp)
	}
	req.Messages = append(req.Messages,
		llm.Message{Role: llm.RoleAssistant, ToolCalls: resp.ToolCalls},
		llm.Message{Role: llm.RoleTool, ToolCallID: resp.ToolCalls[0].ID, Content: "x"})
	resp, err = p.Complete(context.Background(), req, nil)
	if err != nil || resp.Content != "done" {
		t.Fatalf("second answer %+v, %v", resp, err)
	}
}

func BenchmarkInstantLLM(b *testing.B) {
	srv := llmtest.NewServer(b)
	srv.SetDefault(llmtest.ToolThenText("echo", `{"text":"x"}`, "done"))
	p := srv.Provider()
	req := llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "go"}}, Tools: []llm.ToolSpec{{Name: "echo"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Complete(context.Background(), req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

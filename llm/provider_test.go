package llm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
)

func TestNewChoosesProvider(t *testing.T) {
	tests := []struct {
		cfg      llm.Config
		name     string
		endpoint string // for OpenAI-compatible providers
	}{
		{llm.Config{}, "offline", ""},
		{llm.Config{Provider: "offline", APIKey: "k"}, "offline", ""},
		{llm.Config{APIKey: "sk-x"}, "openai", "https://api.openai.com/v1/chat/completions"},
		{llm.Config{BaseURL: "http://127.0.0.1:11434/v1", Model: "llama3.2"}, "openai", "http://127.0.0.1:11434/v1/chat/completions"},
		{llm.Config{Provider: "Ollama", Model: "qwen2.5"}, "ollama", "http://127.0.0.1:11434/v1/chat/completions"},
		{llm.Config{Provider: "vllm", Model: "m", BaseURL: "http://gpu:8000/v1/"}, "vllm", "http://gpu:8000/v1/chat/completions"},
		{llm.Config{Provider: "deepseek", APIKey: "k"}, "deepseek", "https://api.deepseek.com/v1/chat/completions"},
		{llm.Config{Provider: "qwen", APIKey: "k"}, "qwen", "https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions"},
		{llm.Config{Provider: "openai-compatible", BaseURL: "http://h/v1", Model: "m"}, "openai-compatible", "http://h/v1/chat/completions"},
	}
	for _, tt := range tests {
		p, err := llm.New(tt.cfg, nil)
		if err != nil {
			t.Errorf("New(%+v): %v", tt.cfg, err)
			continue
		}
		if p.Name() != tt.name {
			t.Errorf("New(%+v).Name() = %q, want %q", tt.cfg, p.Name(), tt.name)
		}
		if o, ok := p.(*llm.OpenAI); ok && o.Endpoint() != tt.endpoint {
			t.Errorf("New(%+v) endpoint %q, want %q", tt.cfg, o.Endpoint(), tt.endpoint)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		cfg  llm.Config
		want string
	}{
		{llm.Config{Provider: "anthropic-v9"}, `unknown provider "anthropic-v9"`},
		{llm.Config{Provider: "openai"}, "needs an API key"},
		{llm.Config{Provider: "ollama"}, "needs a model"},
		{llm.Config{Provider: "openai-compatible", Model: "m"}, "needs a base URL"},
	}
	for _, tt := range tests {
		_, err := llm.New(tt.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) err = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func TestNewAgainstLocalServer(t *testing.T) {
	srv := llmtest.NewServer(t, llmtest.WithAPIKey("sk-local"))
	p, err := llm.New(llm.Config{Provider: "vllm", BaseURL: srv.URL(), APIKey: "sk-local", Model: "served"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Complete(context.Background(), userReq("ping"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "echo: ping" || srv.Requests()[0].Model != "served" {
		t.Errorf("resp %+v, model %q", resp, srv.Requests()[0].Model)
	}
}

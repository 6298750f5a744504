package llm_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
)

func TestRouterResolve(t *testing.T) {
	r, err := llm.NewRouter(llm.RouterConfig{
		Default:   llm.Config{Provider: "openai", APIKey: "sk", Model: "gpt-4o-mini"},
		Providers: map[string]llm.Config{"anthropic": {APIKey: "sk-ant"}},
		Models: map[string]llm.ModelEntry{
			"strong": {Provider: "anthropic", Model: "claude-opus", Fallbacks: []string{"cheap", "openai/gpt-4o"}},
			"cheap":  {Provider: "openai", Model: "gpt-4o-mini"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, provider, model, canonical string }{
		{"", "openai", "gpt-4o-mini", "openai/gpt-4o-mini"},
		{"gpt-4.1", "openai", "gpt-4.1", "openai/gpt-4.1"},
		{"anthropic/claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"},
		{"Anthropic/claude-x", "anthropic", "claude-x", "anthropic/claude-x"},
		{"strong", "anthropic", "claude-opus", "strong"},
	} {
		got, err := r.Resolve(tc.name)
		if err != nil || got.Provider != tc.provider || got.Model != tc.model || got.Canonical != tc.canonical {
			t.Errorf("Resolve(%q) = %+v, %v", tc.name, got, err)
		}
	}
	for _, bad := range []string{"nosuch/model", "anthropic/"} {
		if err := r.CheckModel(bad); !errors.Is(err, llm.ErrUnknownModel) {
			t.Errorf("CheckModel(%q) = %v, want ErrUnknownModel", bad, err)
		}
	}
	for _, ok := range []string{"", "gpt-4.1", "strong", "anthropic/claude-x"} {
		if err := r.CheckModel(ok); err != nil {
			t.Errorf("CheckModel(%q) = %v", ok, err)
		}
	}

	// No Anthropic key: the model is known but unavailable.
	r2, err := llm.NewRouter(llm.RouterConfig{Default: llm.Config{Provider: "offline"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.CheckModel("anthropic/claude-x"); !errors.Is(err, llm.ErrModelUnavailable) || !strings.Contains(err.Error(), "API key") {
		t.Errorf("CheckModel without key = %v", err)
	}
	// A self-hosted default takes slashed names as its own models.
	r3, err := llm.NewRouter(llm.RouterConfig{Default: llm.Config{Provider: "vllm", Model: "m"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r3.Resolve("meta-llama/Llama-3-8B"); err != nil || got.Provider != "vllm" || got.Model != "meta-llama/Llama-3-8B" {
		t.Errorf("Resolve on vllm = %+v, %v", got, err)
	}

	// Bad entries are refused when the router is made.
	if _, err := llm.NewRouter(llm.RouterConfig{Default: llm.Config{Provider: "offline"},
		Models: map[string]llm.ModelEntry{"x": {Provider: "nope", Model: "m"}}}); err == nil {
		t.Error("unknown provider in an entry accepted")
	}
	if _, err := llm.NewRouter(llm.RouterConfig{Default: llm.Config{Provider: "openai", APIKey: "k"},
		Models: map[string]llm.ModelEntry{"x": {Provider: "offline", Model: "m", Fallbacks: []string{"nope/m"}}}}); err == nil {
		t.Error("unresolvable fallback accepted")
	}
}

// routerOver makes a router with a "primary" Anthropic entry that falls back
// to an OpenAI-compatible "backup".
func routerOver(t *testing.T, ant, oai *llmtest.Server, made *atomic.Int32) *llm.Router {
	t.Helper()
	r, err := llm.NewRouter(llm.RouterConfig{
		Default:   llm.Config{Provider: "openai", BaseURL: oai.URL(), Model: "test-model", Timeout: 5 * time.Second, MaxRetries: -1},
		Providers: map[string]llm.Config{"anthropic": {BaseURL: ant.AnthropicURL(), APIKey: "k"}},
		Models: map[string]llm.ModelEntry{
			"primary": {Provider: "anthropic", Model: "claude-test", Fallbacks: []string{"openai/backup-model"}},
		},
		New: func(c llm.Config, l *slog.Logger) (llm.Provider, error) {
			if made != nil {
				made.Add(1)
			}
			return llm.New(c, l)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRouterRoutesAndCachesClients(t *testing.T) {
	ant, oai := llmtest.NewAnthropicServer(t), llmtest.NewServer(t)
	var made atomic.Int32
	r := routerOver(t, ant, oai, &made)
	for range 3 {
		resp, err := r.Complete(context.Background(), llm.Request{Model: "anthropic/claude-x", Messages: []llm.Message{{Role: llm.RoleUser, Content: "hi"}}}, nil)
		if err != nil || resp.Provider != "anthropic" || resp.Model != "claude-x" || resp.Content != "echo: hi" {
			t.Fatalf("resp = %+v, %v", resp, err)
		}
	}
	resp, err := r.Complete(context.Background(), userReq("plain"), nil)
	if err != nil || resp.Provider != "openai" || resp.Model != "test-model" {
		t.Fatalf("default resp = %+v, %v", resp, err)
	}
	if n := made.Load(); n != 2 {
		t.Errorf("%d clients made, want 2 (one per provider configuration)", n)
	}
	if ant.RequestCount() != 3 || oai.RequestCount() != 1 {
		t.Errorf("requests: anthropic %d, openai %d", ant.RequestCount(), oai.RequestCount())
	}
}

func TestRouterFallbackOn5xxNotOn4xx(t *testing.T) {
	ant, oai := llmtest.NewAnthropicServer(t), llmtest.NewServer(t)
	r := routerOver(t, ant, oai, nil)
	req := llm.Request{Model: "primary", Messages: []llm.Message{{Role: llm.RoleUser, Content: "hi"}}}

	// 5xx on the primary (no retries configured) → the fallback answers.
	ant.Enqueue(llmtest.Reply{Status: 503, ErrorMessage: "upstream down"})
	resp, err := r.Complete(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ant.RequestCount() != 1 {
		t.Errorf("primary tried %d times", ant.RequestCount())
	}
	if resp.Provider != "openai" || resp.Model != "backup-model" || resp.FallbackFrom != "anthropic/claude-test" ||
		len(resp.Failed) != 1 || resp.Failed[0].Provider != "anthropic" || !strings.Contains(resp.Failed[0].Error, "upstream down") {
		t.Errorf("resp = %+v", resp)
	}
	if oai.RequestCount() != 1 || oai.Requests()[0].Model != "backup-model" {
		t.Errorf("fallback requests = %+v", oai.Requests())
	}

	// 400 and 429 on the primary → no fallback, the provider's message.
	ant.Enqueue(llmtest.Reply{Status: 400, ErrorMessage: "messages: roles must alternate"})
	_, err = r.Complete(context.Background(), req, nil)
	if !errors.Is(err, llm.ErrBadRequest) || !strings.Contains(err.Error(), "roles must alternate") {
		t.Errorf("400 err = %v", err)
	}
	ant.Enqueue(llmtest.Reply{Status: 429, RetryAfter: "0"})
	_, err = r.Complete(context.Background(), req, nil)
	if !errors.Is(err, llm.ErrRateLimited) {
		t.Errorf("429 err = %v", err)
	}
	if oai.RequestCount() != 1 {
		t.Errorf("a 4xx was failed over: %d fallback requests", oai.RequestCount())
	}
	// Unknown model at run time: a bad request.
	if _, err := r.Complete(context.Background(), llm.Request{Model: "nope/x"}, nil); !errors.Is(err, llm.ErrBadRequest) || !errors.Is(err, llm.ErrUnknownModel) {
		t.Errorf("unknown model err = %v", err)
	}
}

package llm

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Config selects and configures a provider (see New).
type Config struct {
	// Provider names the backend: "openai", "openai-compatible", "ollama",
	// "vllm", "deepseek", "qwen" (all OpenAI-compatible) or "offline". When
	// empty: "openai" if APIKey or BaseURL is set, else "offline".
	Provider string
	// Model is the default model; some providers have one (see New).
	Model string
	// APIKey is the bearer token, if the server needs one.
	APIKey string
	// BaseURL is the API root (e.g. http://127.0.0.1:11434/v1); some
	// providers have a default (see New).
	BaseURL string
	// GeminiAPIKey and GeminiBaseURL configure provider "gemini"; APIKey and
	// BaseURL are used when they are empty.
	GeminiAPIKey  string
	GeminiBaseURL string
	// Timeout and MaxRetries: see OpenAIConfig.
	Timeout    time.Duration
	MaxRetries int
	// ThinkingBudget turns on extended thinking where the provider has it
	// (anthropic): the budget in tokens; 0 leaves it off.
	ThinkingBudget int
}

// openAIDefaults are the defaults of an OpenAI-compatible provider;
// requireKey: a request without an API key cannot succeed.
type openAIDefaults struct {
	baseURL    string
	model      string
	requireKey bool
}

func openAICompatibleDefaults(name string) (openAIDefaults, bool) {
	switch name {
	case "openai":
		return openAIDefaults{baseURL: DefaultOpenAIBaseURL, model: "gpt-4o-mini", requireKey: true}, true
	case "openai-compatible":
		return openAIDefaults{}, true
	case "ollama":
		return openAIDefaults{baseURL: "http://127.0.0.1:11434/v1"}, true
	case "vllm":
		return openAIDefaults{baseURL: "http://127.0.0.1:8000/v1"}, true
	case "deepseek":
		return openAIDefaults{baseURL: "https://api.deepseek.com/v1", model: "deepseek-chat", requireKey: true}, true
	case "qwen":
		return openAIDefaults{baseURL: "https://dashscope.aliyuncs.com/compatible-mode/v1", model: "qwen-plus", requireKey: true}, true
	}
	return openAIDefaults{}, false
}

// Providers lists the provider names New accepts.
func Providers() []string {
	return []string{"openai", "openai-compatible", "ollama", "vllm", "deepseek", "qwen", "anthropic", "gemini", "offline"}
}

// New returns the provider cfg names. Defaults per provider:
//
//	openai             base https://api.openai.com/v1, model gpt-4o-mini, API key required
//	openai-compatible  BaseURL and Model required
//	ollama             base http://127.0.0.1:11434/v1, Model required
//	vllm               base http://127.0.0.1:8000/v1, Model required
//	deepseek           base https://api.deepseek.com/v1, model deepseek-chat, API key required
//	qwen               base https://dashscope.aliyuncs.com/compatible-mode/v1, model qwen-plus, API key required
//	anthropic          base https://api.anthropic.com, model claude-sonnet-4-5, API key required
//	gemini             Google's Gemini API, base https://generativelanguage.googleapis.com/, model gemini-2.5-flash, API key required
//	offline            the offline demo model (no network)
//
// A nil logger discards logs.
func New(cfg Config, logger *slog.Logger) (Provider, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	name := strings.ToLower(strings.TrimSpace(cfg.Provider))
	if name == "" {
		if cfg.APIKey != "" || cfg.BaseURL != "" {
			name = "openai"
		} else {
			name = "offline"
		}
	}

	if name == "offline" {
		logger.Info("using the offline demo model (no LLM API key configured or offline selected)")
		return NewOffline(), nil
	}
	if d, ok := openAICompatibleDefaults(name); ok {
		baseURL, model := cfg.BaseURL, cfg.Model
		if baseURL == "" {
			baseURL = d.baseURL
		}
		if model == "" {
			model = d.model
		}
		if baseURL == "" {
			return nil, fmt.Errorf("llm: provider %q needs a base URL", name)
		}
		if model == "" {
			return nil, fmt.Errorf("llm: provider %q needs a model", name)
		}
		if d.requireKey && cfg.APIKey == "" && cfg.BaseURL == "" {
			return nil, fmt.Errorf("llm: provider %q needs an API key", name)
		}
		p := NewOpenAI(OpenAIConfig{
			Name:       name,
			BaseURL:    baseURL,
			APIKey:     cfg.APIKey,
			Model:      model,
			Timeout:    cfg.Timeout,
			MaxRetries: cfg.MaxRetries,
			Logger:     logger,
		})
		logger.Info("LLM provider configured", "llm", name, "endpoint", p.Endpoint(), "model", model)
		return p, nil
	}
	if name == "gemini" {
		key, baseURL := cfg.GeminiAPIKey, cfg.GeminiBaseURL
		if key == "" {
			key = cfg.APIKey
		}
		if baseURL == "" {
			baseURL = cfg.BaseURL
		}
		p, err := NewGemini(GeminiConfig{
			APIKey: key, BaseURL: baseURL, Model: cfg.Model,
			Timeout: cfg.Timeout, MaxRetries: cfg.MaxRetries, Logger: logger,
		})
		if err != nil {
			return nil, err
		}
		logger.Info("LLM provider configured", "llm", name, "endpoint", p.Endpoint(), "model", p.model)
		return p, nil
	}
	if name == "anthropic" {
		model := cfg.Model
		if model == "" {
			model = DefaultAnthropicModel
		}
		if cfg.APIKey == "" && cfg.BaseURL == "" {
			return nil, fmt.Errorf("llm: provider %q needs an API key", name)
		}
		p := NewAnthropic(AnthropicConfig{
			BaseURL: cfg.BaseURL, APIKey: cfg.APIKey, Model: model, Timeout: cfg.Timeout,
			MaxRetries: cfg.MaxRetries, ThinkingBudget: cfg.ThinkingBudget, Logger: logger,
		})
		logger.Info("LLM provider configured", "llm", name, "endpoint", p.Endpoint(), "model", model)
		return p, nil
	}
	return nil, fmt.Errorf("llm: unknown provider %q (known: %s)", cfg.Provider, strings.Join(Providers(), ", "))
}

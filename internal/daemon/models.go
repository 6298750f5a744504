package daemon

import (
	"log/slog"
	"strings"
	"time"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/llm"
)

// RouterConfig maps the configuration onto the model router: the default
// provider (LLM_*), the other providers' keys and base URLs, and the named
// models of the config file.
func RouterConfig(cfg config.Config, logger *slog.Logger) llm.RouterConfig {
	def := llm.Config{
		Provider: cfg.LLMProvider, Model: cfg.LLMModel, APIKey: cfg.LLMAPIKey, BaseURL: cfg.LLMBaseURL,
		GeminiAPIKey: cfg.GeminiAPIKey, GeminiBaseURL: cfg.GeminiBaseURL,
		Timeout: time.Duration(cfg.LLMTimeout), MaxRetries: cfg.LLMMaxRetries,
	}
	if strings.EqualFold(strings.TrimSpace(cfg.LLMProvider), "anthropic") {
		// LLM_API_KEY may be OPENAI_API_KEY borrowed: ANTHROPIC_API_KEY wins.
		if cfg.AnthropicAPIKey != "" {
			def.APIKey = cfg.AnthropicAPIKey
		}
		if def.BaseURL == "" {
			def.BaseURL = cfg.AnthropicBaseURL
		}
	}
	providers := map[string]llm.Config{
		"anthropic": {APIKey: cfg.AnthropicAPIKey, BaseURL: cfg.AnthropicBaseURL},
		"gemini":    {APIKey: cfg.GeminiAPIKey, BaseURL: cfg.GeminiBaseURL},
	}
	if cfg.OpenAIAPIKey != "" {
		providers["openai"] = llm.Config{APIKey: cfg.OpenAIAPIKey}
	}
	models := make(map[string]llm.ModelEntry, len(cfg.Models))
	for name, m := range cfg.Models {
		e := llm.ModelEntry{Provider: m.Provider, Model: m.Model, BaseURL: m.BaseURL, APIKey: m.APIKey, Fallbacks: m.Fallbacks}
		if m.Thinking != nil {
			e.ThinkingBudget = m.Thinking.BudgetTokens
		}
		models[name] = e
	}
	return llm.RouterConfig{Default: def, Providers: providers, Models: models, Logger: logger}
}

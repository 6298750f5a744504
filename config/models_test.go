package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestModelsSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.config.json")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"models": {
		"strong": {"provider": "anthropic", "model": "claude-opus", "apiKeyEnv": "TEAM_ANTHROPIC_KEY",
		           "fallbacks": ["cheap", "openai/gpt-4o-mini"], "thinking": {"budgetTokens": 2048}},
		"cheap": {"provider": "openai", "model": "gpt-4o-mini", "baseUrl": "http://127.0.0.1:9/v1"}}}`)
	cfg, err := Load(path, env(map[string]string{"TEAM_ANTHROPIC_KEY": "sk-team", "ANTHROPIC_API_KEY": "sk-ant",
		"ANTHROPIC_BASE_URL": "http://127.0.0.1:8/", "OPENAI_API_KEY": "sk-oai"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	strong := cfg.Models["strong"]
	if strong.APIKey != "sk-team" || strong.Thinking.BudgetTokens != 2048 || len(strong.Fallbacks) != 2 ||
		cfg.AnthropicAPIKey != "sk-ant" || cfg.AnthropicBaseURL != "http://127.0.0.1:8/" || cfg.OpenAIAPIKey != "sk-oai" {
		t.Errorf("loaded %+v", cfg)
	}
	red := cfg.Redacted()
	if red.AnthropicAPIKey != "****" || red.OpenAIAPIKey != "****" {
		t.Errorf("redacted %+v", red)
	}

	for _, tc := range []struct{ body, key string }{
		{`{"models": {"a/b": {"provider": "openai", "model": "m"}}}`, "models.a/b"},
		{`{"models": {"x": {"provider": "", "model": "m"}}}`, "models.x.provider"},
		{`{"models": {"x": {"provider": "openai", "model": ""}}}`, "models.x.model"},
		{`{"models": {"x": {"provider": "openai", "model": "m", "fallbacks": ["x"]}}}`, "models.x.fallbacks"},
		{`{"models": {"x": {"provider": "openai", "model": "m", "fallbacks": ["nope"]}}}`, "models.x.fallbacks"},
		{`{"models": {"x": {"provider": "openai", "model": "m", "baseUrl": "ftp://h"}}}`, "models.x.baseUrl"},
		{`{"models": {"x": {"provider": "openai", "model": "m", "apiKeyEnv": "A B"}}}`, "models.x.apiKeyEnv"},
		{`{"models": {"x": {"provider": "anthropic", "model": "m", "thinking": {"budgetTokens": 10}}}}`, "models.x.thinking.budgetTokens"},
	} {
		write(tc.body)
		cfg, err := Load(path, env(nil))
		if err == nil {
			err = cfg.Validate()
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key {
			t.Errorf("%s: err = %v, want key %s", tc.body, err, tc.key)
		}
	}
	// Unknown keys inside an entry are refused like any unknown key.
	write(`{"models": {"x": {"provider": "openai", "model": "m", "apikey": "inline"}}}`)
	if _, err := Load(path, env(nil)); err == nil || !strings.Contains(err.Error(), "apikey") {
		t.Errorf("unknown entry key: %v", err)
	}
}

package config

import (
	"errors"
	"strings"
	"testing"
)

func TestGeminiSettings(t *testing.T) {
	t.Chdir(t.TempDir())
	cases := []struct {
		env        map[string]string
		geminiKey  string
		llmKey     string
		geminiBase string
	}{
		{map[string]string{"LLM_PROVIDER": "gemini", "GEMINI_API_KEY": "g1", "GOOGLE_API_KEY": "g2"}, "g1", "", ""},
		{map[string]string{"LLM_PROVIDER": "gemini", "GOOGLE_API_KEY": "g2", "GEMINI_BASE_URL": "http://127.0.0.1:9/"}, "g2", "", "http://127.0.0.1:9/"},
		// OpenAI's key is never borrowed for Gemini.
		{map[string]string{"LLM_PROVIDER": "Gemini", "OPENAI_API_KEY": "sk-openai"}, "", "", ""},
		// Another provider still borrows it, and keeps the Gemini key apart.
		{map[string]string{"OPENAI_API_KEY": "sk-openai", "GEMINI_API_KEY": "g1"}, "g1", "sk-openai", ""},
	}
	for _, c := range cases {
		cfg, err := Load("", env(c.env))
		if err != nil {
			t.Fatalf("%v: %v", c.env, err)
		}
		if cfg.GeminiAPIKey != c.geminiKey || cfg.LLMAPIKey != c.llmKey || cfg.GeminiBaseURL != c.geminiBase {
			t.Errorf("%v: gemini key %q llm key %q base %q", c.env, cfg.GeminiAPIKey, cfg.LLMAPIKey, cfg.GeminiBaseURL)
		}
	}

	c := Default()
	c.GeminiBaseURL = "generativelanguage.googleapis.com"
	var ce *Error
	if err := c.Validate(); !errors.As(err, &ce) || ce.Key != "GEMINI_BASE_URL" {
		t.Errorf("bad GEMINI_BASE_URL: %v", err)
	}

	c = Default()
	c.GeminiAPIKey = "AIza-secret"
	if r := c.Redacted(); strings.Contains(r.GeminiAPIKey, "secret") || c.GeminiAPIKey != "AIza-secret" {
		t.Errorf("redacted %q, original %q", r.GeminiAPIKey, c.GeminiAPIKey)
	}
}

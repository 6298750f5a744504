package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// LLM_PROVIDER=gemini without a Google key is a configuration error (exit 2)
// naming the settings to set; an OpenAI key in the environment does not
// count, as it is never sent to Google.
func TestServeGeminiWithoutKeyExitsTwo(t *testing.T) {
	env := map[string]string{"LLM_PROVIDER": "gemini", "OPENAI_API_KEY": "sk-openai"}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--port", "0", "--data-dir", t.TempDir()}, &stdout, &stderr,
		func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if code != 2 || !strings.Contains(stderr.String(), "LLM_PROVIDER") || !strings.Contains(stderr.String(), "GEMINI_API_KEY") {
		t.Fatalf("exit %d, stderr %q; want 2 naming LLM_PROVIDER and GEMINI_API_KEY", code, stderr.String())
	}
	if strings.Contains(stderr.String(), "sk-openai") {
		t.Fatalf("stderr shows a key: %q", stderr.String())
	}
}

// serve configured for Gemini talks to GEMINI_BASE_URL with GEMINI_API_KEY,
// streams the answer into a completed run, and a wrong key fails the run as
// an auth error, not retried.
func TestDaemonRunsOnGemini(t *testing.T) {
	srv := llmtest.NewGeminiServer(t, llmtest.WithGeminiAPIKey("g-right"))
	srv.Enqueue(llmtest.Reply{Text: "Bonjour from Gemini."})
	cfg := newConfig(t, "sqlite")
	cfg.LLMProvider, cfg.LLMModel = "gemini", "gemini-2.5-pro"
	cfg.GeminiAPIKey, cfg.GeminiBaseURL = "g-right", srv.URL()
	cfg.LLMAPIKey = "sk-openai-not-for-google"
	d := startDaemon(t, cfg, nil)
	c := d.client("acme", "bob")
	run := c.waitRun(c.createRun("main", "", "hi"), 10*time.Second)
	if run.Status != store.RunCompleted || run.Output != "Bonjour from Gemini." {
		t.Fatalf("run = %+v (error %+v)", run, run.Error)
	}
	r := srv.Requests()[0]
	if r.APIKey != "g-right" || r.Model != "gemini-2.5-pro" || r.LastUserText() != "hi" {
		t.Errorf("request key %q model %q input %q", r.APIKey, r.Model, r.LastUserText())
	}

	bad := llmtest.NewGeminiServer(t, llmtest.WithGeminiAPIKey("g-right"))
	cfg = newConfig(t, "sqlite")
	cfg.LLMProvider, cfg.GeminiAPIKey, cfg.GeminiBaseURL = "gemini", "g-wrong", bad.URL()
	d = startDaemon(t, cfg, nil)
	c = d.client("acme", "bob")
	run = c.waitRun(c.createRun("main", "", "hi"), 10*time.Second)
	if run.Status != store.RunFailed || run.Error == nil || run.Error.Code != "llm_auth" || !strings.Contains(run.Error.Message, "API key not valid") {
		t.Fatalf("run = %+v (error %+v)", run, run.Error)
	}
	if bad.RequestCount() != 1 {
		t.Errorf("a bad key was retried: %d requests", bad.RequestCount())
	}
}

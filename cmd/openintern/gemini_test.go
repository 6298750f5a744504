package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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

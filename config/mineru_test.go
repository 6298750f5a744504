package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMineruConfig: the seed's mineru section loads, MINERU_* overrides it,
// a bad value is refused with its setting's name, and the key is redacted.
func TestMineruConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.config.json")
	if err := os.WriteFile(path, []byte(`{"mineru": {"enabled": true, "mode": "v4", "apiKey": "file-secret",
		"baseUrl": "https://mineru.net/api/v4", "timeoutMs": 20000, "maxRetries": 3, "pollIntervalMs": 3000,
		"maxPollAttempts": 120, "defaultModelVersion": "pipeline"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(map[string]string{"MINERU_POLL_INTERVAL_MS": "500", "MINERU_DEFAULT_MODEL_VERSION": "vlm"}))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Mineru
	if !m.Enabled || m.APIKey != "file-secret" || m.PollIntervalMs != 500 || m.DefaultModelVersion != "vlm" || m.MaxPollAttempts != 120 {
		t.Fatalf("mineru = %+v", m)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if r := cfg.Redacted(); strings.Contains(r.Mineru.APIKey, "secret") || cfg.Mineru.APIKey != "file-secret" {
		t.Fatalf("redacted %q", r.Mineru.APIKey)
	}
	if d := Default(); d.Mineru.Enabled || d.Validate() != nil {
		t.Fatalf("default mineru = %+v", d.Mineru)
	}
	for key, v := range map[string]string{"MINERU_MODE": "v3", "MINERU_BASE_URL": "ftp://x", "MINERU_TIMEOUT_MS": "5",
		"MINERU_MAX_POLL_ATTEMPTS": "0", "MINERU_DEFAULT_MODEL_VERSION": "huge"} {
		cfg, err := Load("", env(map[string]string{"MINERU_ENABLED": "true", "MINERU_API_KEY": "k", key: v}))
		if err != nil {
			t.Fatalf("load %s: %v", key, err)
		}
		var cerr *Error
		if err := cfg.Validate(); !errors.As(err, &cerr) || cerr.Key != key {
			t.Fatalf("%s=%s: %v, want an error naming it", key, v, err)
		}
	}
	cfg, _ = Load("", env(map[string]string{"MINERU_ENABLED": "1"}))
	var cerr *Error
	if err := cfg.Validate(); !errors.As(err, &cerr) || cerr.Key != "MINERU_API_KEY" {
		t.Fatalf("enabled without a key: %v", err)
	}
	if _, err := Load("", env(map[string]string{"MINERU_MAX_RETRIES": "many"})); err == nil {
		t.Fatal("a bad number loaded")
	}
}

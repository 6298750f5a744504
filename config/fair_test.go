package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The per-scope cap is off by default, set by file or environment (the
// environment winning), and refused when negative.
func TestMaxRunningPerScope(t *testing.T) {
	if d := Default(); d.MaxRunningPerScope != 0 {
		t.Fatalf("default per-scope cap = %d, want 0 (none)", d.MaxRunningPerScope)
	}
	path := filepath.Join(t.TempDir(), "agent.config.json")
	if err := os.WriteFile(path, []byte(`{"max_running_per_scope": 8}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(nil))
	if err != nil || cfg.MaxRunningPerScope != 8 {
		t.Fatalf("from file: %d, %v; want 8", cfg.MaxRunningPerScope, err)
	}
	cfg, err = Load(path, env(map[string]string{"OPENINTERN_MAX_RUNNING_AGENTS_PER_SCOPE": "3"}))
	if err != nil || cfg.MaxRunningPerScope != 3 {
		t.Fatalf("from env: %d, %v; want 3", cfg.MaxRunningPerScope, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a cap of 3: %v", err)
	}
	_, err = Load("", env(map[string]string{"OPENINTERN_MAX_RUNNING_AGENTS_PER_SCOPE": "many"}))
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "OPENINTERN_MAX_RUNNING_AGENTS_PER_SCOPE" {
		t.Fatalf("a word: err %v", err)
	}
	cfg.MaxRunningPerScope = -1
	if err := cfg.Validate(); !errors.As(err, &ce) || ce.Key != "OPENINTERN_MAX_RUNNING_AGENTS_PER_SCOPE" {
		t.Fatalf("-1: err %v", err)
	}
}

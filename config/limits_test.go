package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLimitsDefaults(t *testing.T) {
	d := Default()
	if d.RateLimitRPS != 50 || d.RateLimitBurst != 100 || d.MaxStreams != 2000 || d.MaxStreamsPerScope != 100 ||
		d.MaxAgentsPerScope != 1000 || d.MaxMemoryBytesPerScope != 1<<30 {
		t.Fatalf("limit defaults: %+v", d)
	}
}

func TestLimitsFromFileAndEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(path, []byte(`{"rate_limit_rps": 2.5, "rate_limit_burst": 7, "max_streams": 9,
		"max_streams_per_scope": 3, "max_agents_per_scope": 0, "max_memory_bytes_per_scope": "512MiB"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimitRPS != 2.5 || cfg.RateLimitBurst != 7 || cfg.MaxStreams != 9 || cfg.MaxStreamsPerScope != 3 ||
		cfg.MaxAgentsPerScope != 0 || cfg.MaxMemoryBytesPerScope != 512<<20 {
		t.Fatalf("from the file: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid limits refused: %v", err)
	}
	cfg, err = Load(path, env(map[string]string{
		"OPENINTERN_RATE_LIMIT_RPS": "0", "OPENINTERN_RATE_LIMIT_BURST": "0", "OPENINTERN_MAX_STREAMS": "10",
		"OPENINTERN_MAX_STREAMS_PER_SCOPE": "0", "OPENINTERN_MAX_AGENTS_PER_SCOPE": "5",
		"OPENINTERN_MAX_MEMORY_BYTES_PER_SCOPE": "2GB",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimitRPS != 0 || cfg.RateLimitBurst != 0 || cfg.MaxStreams != 10 || cfg.MaxStreamsPerScope != 0 ||
		cfg.MaxAgentsPerScope != 5 || cfg.MaxMemoryBytesPerScope != 2e9 {
		t.Fatalf("the environment should beat the file: %+v", cfg)
	}
	// RPS 0 turns the limit off, so a burst of 0 is fine then.
	if err := cfg.Validate(); err != nil {
		t.Fatalf("limits off refused: %v", err)
	}
}

func TestBytes(t *testing.T) {
	for in, want := range map[string]Bytes{
		"0": 0, "1048576": 1 << 20, "64KiB": 64 << 10, "500MB": 500e6, "1.5GiB": 3 << 29, "2 TiB": 2 << 40, "10B": 10,
	} {
		var b Bytes
		if err := b.Set(in); err != nil || b != want {
			t.Errorf("Bytes.Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1XB", "GiB", "1 gib", "1e3", "99999999999TiB"} {
		var b Bytes
		if err := b.Set(in); err == nil {
			t.Errorf("Bytes.Set(%q) = %d, want an error", in, b)
		}
	}
	var b Bytes
	if err := b.UnmarshalJSON([]byte(`4096`)); err != nil || b != 4096 {
		t.Errorf("JSON number: %d, %v", b, err)
	}
	if err := b.UnmarshalJSON([]byte(`true`)); err == nil {
		t.Error("JSON true accepted as a size")
	}
}

func TestBadLimitsNameTheKey(t *testing.T) {
	for key, e := range map[string]map[string]string{
		"OPENINTERN_RATE_LIMIT_RPS":             {"OPENINTERN_RATE_LIMIT_RPS": "fast"},
		"OPENINTERN_RATE_LIMIT_BURST":           {"OPENINTERN_RATE_LIMIT_BURST": "1.5"},
		"OPENINTERN_MAX_STREAMS":                {"OPENINTERN_MAX_STREAMS": "many"},
		"OPENINTERN_MAX_MEMORY_BYTES_PER_SCOPE": {"OPENINTERN_MAX_MEMORY_BYTES_PER_SCOPE": "1 gallon"},
	} {
		_, err := Load("", env(e))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != key {
			t.Errorf("%v: err %v, want key %s", e, err, key)
		}
	}
	for key, mutate := range map[string]func(*Config){
		"OPENINTERN_RATE_LIMIT_RPS":             func(c *Config) { c.RateLimitRPS = -1 },
		"OPENINTERN_RATE_LIMIT_BURST":           func(c *Config) { c.RateLimitBurst = 0 },
		"OPENINTERN_MAX_STREAMS":                func(c *Config) { c.MaxStreams = -1 },
		"OPENINTERN_MAX_STREAMS_PER_SCOPE":      func(c *Config) { c.MaxStreamsPerScope = -1 },
		"OPENINTERN_MAX_AGENTS_PER_SCOPE":       func(c *Config) { c.MaxAgentsPerScope = -1 },
		"OPENINTERN_MAX_MEMORY_BYTES_PER_SCOPE": func(c *Config) { c.MaxMemoryBytesPerScope = -1 },
	} {
		c := Default()
		mutate(&c)
		var ce *Error
		if err := c.Validate(); !errors.As(err, &ce) || ce.Key != key {
			t.Errorf("%s: err %v", key, err)
		}
	}
}

package config

import (
	"errors"
	"testing"
)

// TestIngestConcurrency: 2 by default, set by the environment, and refused
// outside 1-64 with the setting's name.
func TestIngestConcurrency(t *testing.T) {
	if d := Default(); d.IngestConcurrency != 2 {
		t.Fatalf("default ingest concurrency = %d, want 2", d.IngestConcurrency)
	}
	cfg, err := Load("", env(map[string]string{"OPENINTERN_INGEST_CONCURRENCY": "5"}))
	if err != nil || cfg.IngestConcurrency != 5 {
		t.Fatalf("from the environment: %d, %v", cfg.IngestConcurrency, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("5 refused: %v", err)
	}
	for _, v := range []string{"0", "65", "-1"} {
		cfg, err := Load("", env(map[string]string{"OPENINTERN_INGEST_CONCURRENCY": v}))
		if err != nil {
			t.Fatalf("load %s: %v", v, err)
		}
		var cerr *Error
		if err := cfg.Validate(); !errors.As(err, &cerr) || cerr.Key != "OPENINTERN_INGEST_CONCURRENCY" {
			t.Fatalf("%s: %v, want an error naming OPENINTERN_INGEST_CONCURRENCY", v, err)
		}
	}
}

package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestSkillsSettings: skills.dir and skills.max_bytes come from the file,
// the environment wins, and a cap out of range is refused by name.
func TestSkillsSettings(t *testing.T) {
	if d := Default(); d.Skills.MaxBytes != 5<<20 || d.Skills.Dir != "" {
		t.Fatalf("defaults: %+v", d.Skills)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.config.json")
	if err := os.WriteFile(path, []byte(`{"skills": {"dir": "/srv/skills", "max_bytes": "2MiB"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Skills.Dir != "/srv/skills" || cfg.Skills.MaxBytes != 2<<20 {
		t.Fatalf("from the file: %+v", cfg.Skills)
	}
	cfg, err = Load(path, env(map[string]string{"OPENINTERN_SKILLS_DIR": "/other", "OPENINTERN_SKILL_MAX_BYTES": "1MiB"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Skills.Dir != "/other" || cfg.Skills.MaxBytes != 1<<20 {
		t.Fatalf("from the environment: %+v", cfg.Skills)
	}
	for _, v := range []string{"10", "64MiB"} {
		cfg, err := Load(path, env(map[string]string{"OPENINTERN_SKILL_MAX_BYTES": v}))
		if err == nil {
			err = cfg.Validate()
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != "OPENINTERN_SKILL_MAX_BYTES" {
			t.Errorf("%s: %v, want an error naming OPENINTERN_SKILL_MAX_BYTES", v, err)
		}
	}
	if err := os.WriteFile(path, []byte(`{"skills": {"folder": "x"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, env(nil)); err == nil {
		t.Fatal("an unknown key under skills was accepted")
	}
}

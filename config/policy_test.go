package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openintern/openintern/tools"
)

// TestPolicySettings: the policy key is read from the file (defaults on
// unless said otherwise), the environment layers over it, and bad rules,
// a scratch folder outside the workspace, a URL as a host or an unknown key
// are refused naming the setting.
func TestPolicySettings(t *testing.T) {
	cfg := Default()
	if !cfg.Policy.Defaults || cfg.Policy.ScratchDir != "scratch" {
		t.Fatalf("default policy: %+v", cfg.Policy)
	}
	write := func(body string) string {
		path := filepath.Join(t.TempDir(), "agent.config.json")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg, err := Load(write(`{"policy": {"rules": [{"tool": "shell", "effect": "deny", "reason": "no shell here"}], "scratchDir": "tmp/work"}}`),
		env(map[string]string{"OPENINTERN_POLICY_ALLOW_HOSTS": "api.example.com, *.docs.example"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := cfg.Policy
	if !p.Defaults || p.ScratchDir != "tmp/work" || len(p.Rules) != 1 || p.Rules[0].Effect != tools.EffectDeny ||
		strings.Join(p.AllowHosts, ",") != "api.example.com,*.docs.example" {
		t.Fatalf("policy: %+v", p)
	}
	cfg, err = Load(write(`{"policy": {"defaults": true}}`), env(map[string]string{"OPENINTERN_POLICY_DEFAULTS": "off"}))
	if err != nil || cfg.Policy.Defaults {
		t.Fatalf("defaults off by env: %+v %v", cfg.Policy, err)
	}

	for key, body := range map[string]string{
		"policy.rules":                  `{"policy": {"rules": [{"tool": "x", "effect": "maybe"}]}}`,
		"policy.scratchDir":             `{"policy": {"scratchDir": "../outside"}}`,
		"OPENINTERN_POLICY_ALLOW_HOSTS": `{"policy": {"allowHosts": ["https://x.example/"]}}`,
	} {
		cfg, err := Load(write(body), env(nil))
		if err != nil {
			t.Fatalf("%s: load: %v", key, err)
		}
		var ce *Error
		if err := cfg.Validate(); !errors.As(err, &ce) || ce.Key != key {
			t.Errorf("%s: %v", key, err)
		}
	}
	if _, err := Load(write(`{"policy": {"rules": [{"tool": "x", "effect": "deny", "colour": "red"}]}}`), env(nil)); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown rule key: %v", err)
	}
}

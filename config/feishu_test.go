package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFeishu: the seed's defaults (disabled), the file's camelCase keys, the
// FEISHU_* variables over them, refused values named, and the secret masked.
func TestFeishu(t *testing.T) {
	d := Default().Feishu
	if d.Enabled || d.BaseURL != "https://open.feishu.cn" || d.TimeoutMs != 20000 || d.MaxRetries != 3 || d.PollIntervalMs != 120000 || d.Ready() {
		t.Fatalf("defaults: %+v", d)
	}
	path := filepath.Join(t.TempDir(), "agent.config.json")
	if err := os.WriteFile(path, []byte(`{"feishu":{"enabled":true,"appId":"cli_a","appSecret":"from-file","baseUrl":"https://open.larksuite.com","timeoutMs":5000,"maxRetries":1,"pollIntervalMs":60000}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(map[string]string{"FEISHU_APP_SECRET": "from-env", "FEISHU_POLL_INTERVAL_MS": "0"}))
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Feishu
	if !f.Ready() || f.AppID != "cli_a" || f.AppSecret != "from-env" || f.BaseURL != "https://open.larksuite.com" || f.TimeoutMs != 5000 ||
		f.MaxRetries != 1 || f.PollIntervalMs != 0 {
		t.Fatalf("loaded: %+v", f)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg.Redacted())
	if strings.Contains(string(b), "from-env") || !strings.Contains(string(b), `"appId":"cli_a"`) {
		t.Fatalf("redacted: %s", b)
	}
	for key, vars := range map[string]map[string]string{
		"FEISHU_BASE_URL":         {"FEISHU_BASE_URL": "ftp://x"},
		"FEISHU_TIMEOUT_MS":       {"FEISHU_TIMEOUT_MS": "5"},
		"FEISHU_MAX_RETRIES":      {"FEISHU_MAX_RETRIES": "-1"},
		"FEISHU_POLL_INTERVAL_MS": {"FEISHU_POLL_INTERVAL_MS": "500"},
		"FEISHU_APP_ID":           {"FEISHU_ENABLED": "true"},
	} {
		cfg, err := Load("", env(vars))
		if err == nil {
			err = cfg.Validate()
		}
		var cerr *Error
		if !errors.As(err, &cerr) || cerr.Key != key {
			t.Fatalf("%v: %v, want an error naming %s", vars, err, key)
		}
	}
	if _, err := Load("", env(map[string]string{"FEISHU_ENABLED": "maybe"})); err == nil {
		t.Fatal("FEISHU_ENABLED=maybe accepted")
	}
}

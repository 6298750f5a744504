package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/policy"
	"github.com/openintern/openintern/tools"
)

// TestPolicyCLI: through the shipped daemon, `policy set` stores rules (and
// refuses a stale version and a bad rule), `policy show` lists them with the
// defaults, and `policy check` says what decides a call.
func TestPolicyCLI(t *testing.T) {
	d, _ := cliDaemon(t)
	env := cliEnv(d, "org-policy", "u1")
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.json")
	if err := os.WriteFile(rules, []byte(`[{"id":"no-shell","tool":"shell","effect":"deny","reason":"no shell on this host"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := runCLI(t, env, "policy", "set", rules, "--version", "0"); res.code != 0 || !strings.Contains(res.stdout, "policy version 1: 1 rules") {
		t.Fatalf("policy set: exit %d %s", res.code, res.stdout)
	}
	assertOneLineError(t, runCLI(t, env, "policy", "set", rules, "--version", "0"), "changed since")
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"rules":[{"tool":"x","effect":"deny"},{"tool":"y","effect":"sometimes"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	assertOneLineError(t, runCLI(t, env, "policy", "set", bad), "rule 1: effect")

	res := runCLI(t, env, "policy", "show")
	for _, want := range []string{"no-shell", "no shell on this host", "version 1", "default:shell", "scratch/"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("policy show lacks %q:\n%s", want, res.stdout)
		}
	}
	res = runCLI(t, env, "policy", "check", "--tool", "shell", "--args", `{"command":"ls"}`, "--json")
	var dec struct{ Effect, Rule, Source string }
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &dec) != nil || dec.Effect != "deny" || dec.Rule != "no-shell" || dec.Source != "scope" {
		t.Fatalf("policy check shell: exit %d %s", res.code, res.stdout)
	}
	res = runCLI(t, env, "policy", "check", "--tool", "http_fetch", "--args", `{"url":"https://example.com/"}`)
	if res.code != 0 || !strings.HasPrefix(res.stdout, "ask (default:fetch_host, default)") {
		t.Fatalf("policy check http_fetch: %s", res.stdout)
	}
	// Another tenant has none of it.
	if res := runCLI(t, cliEnv(d, "org-other", "u1"), "policy", "check", "--tool", "shell"); !strings.HasPrefix(res.stdout, "ask (default:shell") {
		t.Fatalf("another org's check: %s", res.stdout)
	}
	assertOneLineError(t, runCLI(t, env, "policy", "check", "--tool", "shell", "--args", "{nope"), "--args")
}

// TestPolicyFromConfig: the daemon's policy has the config file's rules
// first (shown read-only), and fetch.allow and policy.allowHosts let
// http_fetch run unasked, on PostgreSQL.
func TestPolicyFromConfig(t *testing.T) {
	cfg := newConfig(t, "postgres")
	cfg.Policy.Rules = []policy.Rule{{Tool: "shell", Effect: tools.EffectDeny, Reason: "the operator says no"}}
	cfg.Policy.AllowHosts = []string{"api.example.com"}
	cfg.Fetch.Allow = []string{"intranet.example"}
	d := startDaemon(t, cfg, llm.NewOffline())
	if d.PolicyEngine() == nil {
		t.Fatal("no policy on the daemon")
	}
	env := cliEnv(d, "org-cfg", "u1")
	for args, want := range map[string]string{
		`{"url":"https://api.example.com/x"}`:  "allow (no rule matched, none)",
		`{"url":"http://intranet.example/"}`:   "allow (no rule matched, none)",
		`{"url":"https://elsewhere.example/"}`: "ask (default:fetch_host, default)",
	} {
		if res := runCLI(t, env, "policy", "check", "--tool", "http_fetch", "--args", args); !strings.HasPrefix(res.stdout, want) {
			t.Errorf("%s: %q, want %q", args, res.stdout, want)
		}
	}
	if res := runCLI(t, env, "policy", "check", "--tool", "shell"); !strings.HasPrefix(res.stdout, "deny (config:1, config)") || !strings.Contains(res.stdout, "the operator says no") {
		t.Errorf("shell: %q", res.stdout)
	}
	if res := runCLI(t, env, "policy", "show"); !strings.Contains(res.stdout, "config:1") {
		t.Errorf("show lacks the config rule:\n%s", res.stdout)
	}
}

package main

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/store"
)

// The first admin token of a fresh install is made on the store with no
// daemon; the CLI then works through a daemon with AUTH=token as the token's
// org and user (OPENINTERN_TOKEN, no scope settings), until it is revoked.
func TestCLITokensBootstrapAnAuthDaemon(t *testing.T) {
	cfg := newConfig(t, "sqlite")
	cfg.Auth.Mode = config.AuthToken
	storeEnv := append(os.Environ(), "NO_COLOR=1", "DATA_DIR="+cfg.DataDir, "DATABASE_URL=")

	assertOneLineError(t, runCLI(t, storeEnv, "tokens", "create", "--role", "admin", "--name", "boot"), "--org and --user are required")
	assertOneLineError(t, runCLI(t, storeEnv, "tokens", "create", "--org", "acme", "--user", "alice", "--role", "owner", "--name", "x"), `unknown role "owner"`)
	res := runCLI(t, storeEnv, "tokens", "create", "--org", "acme", "--user", "alice", "--role", "admin", "--name", "bootstrap")
	secret := strings.TrimSpace(res.stdout)
	if res.code != 0 || !strings.HasPrefix(secret, "oit_") || strings.Contains(secret, "\n") || !strings.Contains(res.stderr, "shown only now") {
		t.Fatalf("tokens create: %+v", res)
	}

	d := startDaemon(t, cfg, nil)
	base := append(os.Environ(), "NO_COLOR=1", "OPENINTERN_URL="+d.URL(), "AGENT_ORG_ID=", "AGENT_USER_ID=", "AGENT_PROJECT_ID=")
	assertOneLineError(t, runCLI(t, append(base, "OPENINTERN_TOKEN="), "agents", "list"), "an API token is required")
	withToken := slices.Concat(base, []string{"OPENINTERN_TOKEN=" + secret})
	if res := runCLI(t, withToken, "agents", "create", "writer", "--name", "Writer"); res.code != 0 {
		t.Fatalf("agents create with the token: %+v", res)
	}
	var list struct {
		Agents []struct {
			AgentID string `json:"agent_id"`
			OrgID   string `json:"org_id"`
		} `json:"agents"`
	}
	res = runCLI(t, withToken, "agents", "list", "--json")
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &list) != nil || len(list.Agents) == 0 {
		t.Fatalf("agents list with the token: %+v", res)
	}
	for _, a := range list.Agents {
		if a.OrgID != "" && a.OrgID != "acme" {
			t.Errorf("an agent of org %s was listed", a.OrgID)
		}
	}
	assertOneLineError(t, runCLI(t, slices.Concat(withToken, []string{"AGENT_ORG_ID=other"}), "agents", "list"), "another org")

	var toks []store.APIToken
	res = runCLI(t, storeEnv, "tokens", "list", "--org", "acme", "--user", "alice", "--json")
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &toks) != nil || len(toks) != 1 || toks[0].Name != "bootstrap" || strings.Contains(res.stdout, secret) {
		t.Fatalf("tokens list: %+v", res)
	}
	if res := runCLI(t, storeEnv, "tokens", "revoke", toks[0].ID, "--org", "acme", "--user", "alice"); res.code != 0 || !strings.Contains(res.stdout, "revoked "+toks[0].ID) {
		t.Fatalf("tokens revoke: %+v", res)
	}
	assertOneLineError(t, runCLI(t, withToken, "agents", "list"), "revoked")
	assertOneLineError(t, runCLI(t, storeEnv, "tokens", "revoke", toks[0].ID, "--org", "acme", "--user", "bob"), "not found")
}

package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMCPServersFromFile: the Claude Desktop / VS Code format loads, and
// Redacted hides env values, headers and a URL's password.
func TestMCPServersFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.config.json")
	if err := os.WriteFile(path, []byte(`{"mcpServers": {
		"everything": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything"], "env": {"TOKEN": "env-secret"}},
		"remote": {"url": "https://u:pw@mcp.example/mcp", "headers": {"Authorization": "Bearer header-secret"}},
		"old": {"type": "sse", "url": "http://127.0.0.1:9/sse"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if s := cfg.MCPServers["everything"]; s.Transport() != MCPStdio || s.Command != "npx" || len(s.Args) != 2 || s.Env["TOKEN"] != "env-secret" {
		t.Fatalf("stdio server: %+v", s)
	}
	if cfg.MCPServers["remote"].Transport() != MCPHTTP || cfg.MCPServers["old"].Transport() != MCPSSE {
		t.Fatalf("transports: %+v", cfg.MCPServers)
	}
	out, err := json.Marshal(cfg.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"env-secret", "header-secret", "pw@"} {
		if strings.Contains(string(out), secret) {
			t.Fatalf("Redacted shows %q: %s", secret, out)
		}
	}
	if cfg.MCPServers["everything"].Env["TOKEN"] != "env-secret" {
		t.Fatal("Redacted changed the original")
	}
}

func TestMCPServerValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		srv  MCPServer
		key  string
	}{
		{"Bad", MCPServer{Command: "x"}, "mcpServers.Bad"},
		{"a__b", MCPServer{Command: "x"}, "mcpServers.a__b"},
		{"a_", MCPServer{Command: "x"}, "mcpServers.a_"},
		{"", MCPServer{Command: "x"}, "mcpServers."},
		{strings.Repeat("a", 33), MCPServer{Command: "x"}, "mcpServers." + strings.Repeat("a", 33)},
		{"none", MCPServer{}, "mcpServers.none"},
		{"both", MCPServer{Command: "x", URL: "http://h/mcp"}, "mcpServers.both"},
		{"ftp", MCPServer{URL: "ftp://h/mcp"}, "mcpServers.ftp.url"},
		{"envhttp", MCPServer{URL: "http://h/mcp", Env: map[string]string{"A": "b"}}, "mcpServers.envhttp"},
		{"typ", MCPServer{Type: "ws", URL: "http://h/mcp"}, "mcpServers.typ.type"},
	} {
		cfg := Default()
		cfg.MCPServers = map[string]MCPServer{tc.name: tc.srv}
		var ce *Error
		if err := cfg.Validate(); !errors.As(err, &ce) || ce.Key != tc.key {
			t.Errorf("%q %+v: %v, want an error of key %q", tc.name, tc.srv, err, tc.key)
		}
	}
	cfg := Default()
	cfg.MCPServers = map[string]MCPServer{"ok-1_a": {Command: "x"}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid name refused: %v", err)
	}
}

package mcptools_test

import (
	"path/filepath"
	"testing"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/policy"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// TestToolHintsDrivePolicy: a real MCP server's annotations reach the tool
// policy: the read-only tool runs, the one whose annotations say (by mcp-go's
// defaults) destructive asks, and the one without annotations asks.
func TestToolHintsDrivePolicy(t *testing.T) {
	bin := buildTestServer(t)
	st := openStore(t, filepath.Join(t.TempDir(), "pins.db"))
	h := start(t, st, map[string]config.MCPServer{"hinted": {Command: bin}})
	h.running("hinted")
	eng, err := policy.New(st, policy.Config{Defaults: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]struct {
		effect    tools.Effect
		rule      string
		annotated bool
	}{
		"hinted__pid":   {tools.EffectAllow, "", true},
		"hinted__greet": {tools.EffectAsk, policy.DefaultMCPDestructive, true},
		"hinted__bare":  {tools.EffectAsk, policy.DefaultMCPUnannotated, false},
	} {
		info, ok := h.mgr.ToolInfo(name)
		if !ok || info.MCP == nil || info.MCP.Server != "hinted" || info.MCP.Annotated != want.annotated {
			t.Fatalf("%s: info %+v %v", name, info, ok)
		}
		v, err := eng.Decide(t.Context(), tools.Call{Scope: store.Scope{OrgID: "o", UserID: "u"}, AgentID: "a", Name: name, Args: []byte(`{}`)}, info)
		if err != nil || v.Effect != want.effect || v.Rule != want.rule {
			t.Errorf("%s: %+v %v, want %s by %q", name, v, err, want.effect, want.rule)
		}
	}
	if _, ok := h.mgr.ToolInfo("hinted__nope"); ok {
		t.Error("an unlisted tool has info")
	}
	if _, ok := h.mgr.ToolInfo("nope__pid"); ok {
		t.Error("an unknown server's tool has info")
	}
}

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// askReadFile is a policy that asks a person about every read_file.
var askReadFile = tools.PolicyFunc(func(_ context.Context, call tools.Call, _ tools.ToolInfo) (tools.Verdict, error) {
	if call.Name == "read_file" {
		return tools.Verdict{Effect: tools.EffectAsk, Reason: "reading files needs a person", Rule: "test:ask"}, nil
	}
	return tools.Verdict{Effect: tools.EffectAllow}, nil
})

// TestCLIApprovals: `openintern approvals list|show|approve|deny` against a
// daemon whose policy asks about read_file.
func TestCLIApprovals(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		if last := req.Messages[len(req.Messages)-1]; last.Role == llm.RoleTool {
			return llmtest.Reply{Text: "tool said: " + last.Content}
		}
		return llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "read_file", Arguments: `{"path":"notes.txt"}`}}}
	})
	cfg := newConfig(t, "sqlite")
	if err := os.MkdirAll(cfg.Workspace(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Workspace(), "notes.txt"), []byte("The launch is on Tuesday.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startMain(t, &daemon.Main{Config: cfg, Logger: testLogger(t), Model: srv.Provider(), Policy: askReadFile})
	c := d.client("org-appr", "u1")
	env := cliEnv(d, "org-appr", "u1")

	pending := func() []approvalOut {
		t.Helper()
		var out struct {
			Approvals []approvalOut `json:"approvals"`
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			res := runCLI(t, env, "approvals", "list", "--json")
			if res.code != 0 || json.Unmarshal([]byte(res.stdout), &out) != nil {
				t.Fatalf("approvals list --json: exit %d: %s %s", res.code, res.stdout, res.stderr)
			}
			if len(out.Approvals) > 0 || time.Now().After(deadline) {
				return out.Approvals
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	run1 := c.createRun("main", "s1", "what do my notes say?")
	list := pending()
	if len(list) != 1 || list[0].Tool != "read_file" || list[0].RunID != run1 || list[0].Reason != "reading files needs a person" {
		t.Fatalf("pending = %+v", list)
	}
	id := list[0].ID
	if res := runCLI(t, env, "approvals", "list"); res.code != 0 || !strings.Contains(res.stdout, id) || !strings.Contains(res.stdout, "notes.txt") {
		t.Fatalf("approvals list: %s %s", res.stdout, res.stderr)
	}
	if res := runCLI(t, env, "approvals", "show", id); res.code != 0 || !strings.Contains(res.stdout, `"path": "notes.txt"`) || !strings.Contains(res.stdout, "reading files needs a person") {
		t.Fatalf("approvals show: %s %s", res.stdout, res.stderr)
	}
	if res := runCLI(t, env, "approvals", "approve", id, "--reason", "fine"); res.code != 0 || !strings.Contains(res.stdout, "approved") {
		t.Fatalf("approve: %s %s", res.stdout, res.stderr)
	}
	if run := c.waitRun(run1, 30*time.Second); run.Status != store.RunCompleted || !strings.Contains(run.Output, "The launch is on Tuesday.") {
		t.Fatalf("approved run: %+v", run)
	}
	assertOneLineError(t, runCLI(t, env, "approvals", "deny", id), "already approved")

	run2 := c.createRun("main", "s2", "again")
	list = pending()
	if len(list) != 1 || list[0].RunID != run2 {
		t.Fatalf("pending = %+v", list)
	}
	assertOneLineError(t, runCLI(t, env, "approvals", "approve", list[0].ID, "--always"), "policy")
	if res := runCLI(t, env, "approvals", "deny", list[0].ID, "--reason", "not today"); res.code != 0 {
		t.Fatalf("deny: %s %s", res.stdout, res.stderr)
	}
	if run := c.waitRun(run2, 30*time.Second); run.Status != store.RunCompleted || run.Output != "tool said: denied by user:u1: not today" {
		t.Fatalf("denied run: %+v", run)
	}
	if res := runCLI(t, env, "approvals", "list", "--status", "denied"); !strings.Contains(res.stdout, list[0].ID) {
		t.Fatalf("denied list: %s", res.stdout)
	}
	assertOneLineError(t, runCLI(t, env, "approvals", "list", "--status", "maybe"), "--status")
	assertOneLineError(t, runCLI(t, env, "approvals", "show", "appr_nope"), "not found")
}

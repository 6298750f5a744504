package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// TestCLIApprovals: `openintern approvals list|show|approve|deny` against a
// daemon with the default tool policy, whose built-in rules ask about a
// write_file outside the scratch folder; "approve always" writes a scope rule
// that lets the agent's next call run unasked.
func TestCLIApprovals(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		if last := req.Messages[len(req.Messages)-1]; last.Role == llm.RoleTool {
			return llmtest.Reply{Text: "tool said: " + last.Content}
		}
		return llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "write_file", Arguments: `{"path":"plan.md","content":"Tuesday"}`}}}
	})
	cfg := newConfig(t, "sqlite")
	d := startMain(t, &daemon.Main{Config: cfg, Logger: testLogger(t), Model: srv.Provider()})
	c := d.client("org-appr", "u1")
	env := cliEnv(d, "org-appr", "u1")
	planPath := filepath.Join(cfg.Workspace(), "plan.md")

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

	run1 := c.createRun("main", "s1", "write the plan")
	list := pending()
	if len(list) != 1 || list[0].Tool != "write_file" || list[0].RunID != run1 || !strings.Contains(list[0].Reason, "outside the scratch folder") {
		t.Fatalf("pending = %+v", list)
	}
	if _, err := os.Stat(planPath); !os.IsNotExist(err) {
		t.Fatalf("written before the approval: %v", err)
	}
	id := list[0].ID
	if res := runCLI(t, env, "approvals", "list"); res.code != 0 || !strings.Contains(res.stdout, id) || !strings.Contains(res.stdout, "plan.md") {
		t.Fatalf("approvals list: %s %s", res.stdout, res.stderr)
	}
	if res := runCLI(t, env, "approvals", "show", id); res.code != 0 || !strings.Contains(res.stdout, `"path": "plan.md"`) || !strings.Contains(res.stdout, "outside the scratch folder") {
		t.Fatalf("approvals show: %s %s", res.stdout, res.stderr)
	}
	if res := runCLI(t, env, "approvals", "approve", id, "--reason", "fine"); res.code != 0 || !strings.Contains(res.stdout, "approved") {
		t.Fatalf("approve: %s %s", res.stdout, res.stderr)
	}
	if run := c.waitRun(run1, 30*time.Second); run.Status != store.RunCompleted || run.Output != "tool said: created plan.md (7 bytes)" {
		t.Fatalf("approved run: %+v", run)
	}
	if got, err := os.ReadFile(planPath); err != nil || string(got) != "Tuesday" {
		t.Fatalf("the approved write: %q, %v", got, err)
	}
	assertOneLineError(t, runCLI(t, env, "approvals", "deny", id), "already approved")

	// Approve always: the rule it writes lets main's next write run unasked.
	run2 := c.createRun("main", "s2", "again")
	list = pending()
	if len(list) != 1 || list[0].RunID != run2 {
		t.Fatalf("pending = %+v", list)
	}
	if res := runCLI(t, env, "approvals", "approve", list[0].ID, "--always"); res.code != 0 {
		t.Fatalf("approve --always: %s %s", res.stdout, res.stderr)
	}
	if run := c.waitRun(run2, 30*time.Second); run.Status != store.RunCompleted || run.Output != "tool said: wrote plan.md (7 bytes)" {
		t.Fatalf("run approved always: %+v", run)
	}
	if res := runCLI(t, env, "policy", "show"); res.code != 0 || !strings.Contains(res.stdout, "write_file") {
		t.Fatalf("policy show after always: %s %s", res.stdout, res.stderr)
	}
	run3 := c.createRun("main", "s3", "and again")
	if run := c.waitRun(run3, 30*time.Second); run.Status != store.RunCompleted || run.Output != "tool said: wrote plan.md (7 bytes)" {
		t.Fatalf("run under the always rule: %+v", run)
	}

	// The rule is for main only: another agent's write still asks; deny it.
	c.must(http.StatusCreated, "POST", "/api/agents", map[string]string{"agent_id": "other", "name": "other"}, nil)
	run4 := c.createRun("other", "s4", "write it")
	list = pending()
	if len(list) != 1 || list[0].RunID != run4 {
		t.Fatalf("pending = %+v", list)
	}
	if res := runCLI(t, env, "approvals", "deny", list[0].ID, "--reason", "not today"); res.code != 0 {
		t.Fatalf("deny: %s %s", res.stdout, res.stderr)
	}
	if run := c.waitRun(run4, 30*time.Second); run.Status != store.RunCompleted || run.Output != "tool said: denied by user:u1: not today" {
		t.Fatalf("denied run: %+v", run)
	}
	if res := runCLI(t, env, "approvals", "list", "--status", "denied"); !strings.Contains(res.stdout, list[0].ID) {
		t.Fatalf("denied list: %s", res.stdout)
	}
	assertOneLineError(t, runCLI(t, env, "approvals", "list", "--status", "maybe"), "--status")
	assertOneLineError(t, runCLI(t, env, "approvals", "show", "appr_nope"), "not found")
}

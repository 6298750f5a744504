package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// TestAuditLogEndToEnd: through the shipped daemon, an API call that
// changes something and an agent's memory_write leave audit records, an
// agent's read_file does not, and `openintern audit list` shows and filters
// them.
func TestAuditLogEndToEnd(t *testing.T) {
	d, srv := cliDaemon(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		if last := req.Messages[len(req.Messages)-1]; last.Role == llm.RoleTool {
			return llmtest.Reply{Text: "noted"}
		}
		return llmtest.Reply{ToolCalls: []llm.ToolCall{
			{ID: "call_w", Name: "memory_write", Arguments: `{"text":"the launch is on Tuesday"}`},
			{ID: "call_r", Name: "read_file", Arguments: `{"path":"notes.txt"}`},
		}}
	})
	c := d.client("org-audit", "u1")
	c.must(201, "POST", "/api/agents", map[string]any{"agent_id": "scribe", "name": "Scribe"}, nil)
	runID := c.createRun("scribe", "s1", "remember the launch day")
	if run := c.waitRun(runID, 30*time.Second); run.Status != store.RunCompleted {
		t.Fatalf("run: %+v", run)
	}
	env := cliEnv(d, "org-audit", "u1")

	res := runCLI(t, env, "audit", "list", "--action", "tool:memory_write", "--json")
	var out struct {
		Records []store.AuditRecord `json:"records"`
	}
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &out) != nil || len(out.Records) != 1 {
		t.Fatalf("audit list --action tool:memory_write: exit %d, %s", res.code, res.stdout)
	}
	rec := out.Records[0]
	if rec.Actor != "agent:scribe" || rec.Target != runID || rec.Outcome != store.AuditOK || rec.RequestID != "call_w" ||
		rec.ArgsHash != store.HashArgs([]byte(`{"text":"the launch is on Tuesday"}`)) || rec.Via != store.AuditViaTool {
		t.Fatalf("memory_write record: %+v", rec)
	}
	if res := runCLI(t, env, "audit", "list", "--action", "tool:read_file"); res.code != 0 || !strings.Contains(res.stdout, "No audit records.") {
		t.Fatalf("read_file is read-only, yet: %s", res.stdout)
	}
	res = runCLI(t, env, "audit", "list")
	for _, want := range []string{"POST /api/agents", "scribe", "POST /api/runs", runID, "tool:memory_write", "agent:scribe", "anonymous"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("audit list does not show %q:\n%s", want, res.stdout)
		}
	}
	if res := runCLI(t, cliEnv(d, "org-other", "u1"), "audit", "list"); !strings.Contains(res.stdout, "No audit records.") {
		t.Fatalf("another tenant's audit list: %s", res.stdout)
	}
	assertOneLineError(t, runCLI(t, env, "audit", "list", "--since", "yesterday"), "--since")
}

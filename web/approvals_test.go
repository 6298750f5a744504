package web_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/tools"
)

// askAboutReads stands in for the policy engine: read_file must be approved.
var askAboutReads = tools.PolicyFunc(func(_ context.Context, call tools.Call, _ tools.ToolInfo) (tools.Verdict, error) {
	if call.Name == "read_file" {
		return tools.Verdict{Effect: tools.EffectAsk, Reason: "read_file is high-risk here", Rule: "test:ask"}, nil
	}
	return tools.Verdict{Effect: tools.EffectAllow}, nil
})

// startApprovalDaemon runs a daemon on PostgreSQL (the database at dbURL)
// whose model is srv and whose policy asks about read_file.
func startApprovalDaemon(t *testing.T, dbURL, dataDir string, srv *llmtest.Server) *daemon.Main {
	t.Helper()
	cfg := config.Default()
	cfg.Port = 0
	cfg.DataDir = dataDir
	cfg.DatabaseURL = dbURL
	cfg.AgentIdleTimeout = config.Duration(time.Minute)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := &daemon.Main{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Model: srv.Provider(),
		Heartbeat: time.Second, Policy: askAboutReads}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Run(ctx); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	return d
}

func stopDaemon(t *testing.T, d *daemon.Main) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Errorf("stop daemon: %v", err)
	}
}

// waitStatus polls a run until it has status.
func (c *console) waitStatus(t *testing.T, org, user, runID, status string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var run struct {
			Status string `json:"status"`
		}
		c.call(t, org, user, "GET", "/api/runs/"+runID, nil, &run)
		if run.Status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %q, waited for %q", runID, run.Status, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestApprovalsAcrossRestartInBrowser is the acceptance test of human
// approvals: a run that calls a high-risk tool waits; the daemon is stopped
// and started again on the same database; the call is approved on the
// /approvals page in Chromium and the run finishes with the tool's real
// result. A second call, shown live on the open page, is denied there: the
// model is told, and the run finishes.
func TestApprovalsAcrossRestartInBrowser(t *testing.T) {
	const org, user = "acme", "alice"
	scopeQ := "?org_id=" + org + "&user_id=" + user
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		if last := req.Messages[len(req.Messages)-1]; last.Role == llm.RoleTool {
			return llmtest.Reply{Text: "The tool said: " + last.Content}
		}
		return llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "read_file", Arguments: `{"path":"notes.txt"}`}}}
	})
	dbURL, dataDir := testenv.PostgresURL(t), t.TempDir()
	d1 := startApprovalDaemon(t, dbURL, dataDir, srv)
	if err := os.WriteFile(filepath.Join(d1.Config.Workspace(), "notes.txt"), []byte("The launch is on Tuesday.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c1 := &console{url: d1.URL()}
	var created struct {
		RunID string `json:"run_id"`
	}
	if st := c1.call(t, org, user, "POST", "/api/runs", map[string]any{"input": "what do my notes say?"}, &created); st != 201 {
		t.Fatalf("create run: %d", st)
	}
	c1.waitStatus(t, org, user, created.RunID, "waiting_approval")
	if n := srv.RequestCount(); n != 1 {
		t.Fatalf("model asked %d times before the approval", n)
	}

	// Restart on the same database.
	stopDaemon(t, d1)
	d2 := startApprovalDaemon(t, dbURL, dataDir, srv)
	t.Cleanup(func() { stopDaemon(t, d2) })
	c := &console{url: d2.URL()}
	time.Sleep(300 * time.Millisecond)
	c.waitStatus(t, org, user, created.RunID, "waiting_approval")

	b := startBrowser(t)
	p := b.page(t, c)
	p.open("/approvals" + scopeQ)
	card := `document.querySelector('.approval-card[data-status="pending"]')`
	p.waitJS(card, "the pending approval's card")
	if got := p.str(card + `.querySelector('.approval-args').textContent`); !strings.Contains(got, `"path": "notes.txt"`) {
		t.Fatalf("arguments shown: %q", got)
	}
	if got := p.str(card + `.querySelector('.approval-reason').textContent`); got != "read_file is high-risk here" {
		t.Fatalf("reason shown: %q", got)
	}
	p.run(chromedp.Click(chromedp.CSS(`.approval-card[data-status="pending"] .approval-approve`)))
	if st := c.waitRun(t, org, user, created.RunID); st != "completed" {
		t.Fatalf("approved run: %s", st)
	}
	var run struct {
		Output string `json:"output"`
	}
	c.call(t, org, user, "GET", "/api/runs/"+created.RunID, nil, &run)
	if !strings.HasPrefix(run.Output, "The tool said: ") || !strings.Contains(run.Output, "The launch is on Tuesday.") {
		t.Fatalf("output: %q", run.Output)
	}
	var evs struct {
		Events []struct {
			Type    string         `json:"type"`
			Payload map[string]any `json:"payload"`
		} `json:"events"`
	}
	c.call(t, org, user, "GET", "/api/runs/"+created.RunID+"/events?type=tool.result,approval.resolved,run.resumed", nil, &evs)
	types := []string{}
	for _, e := range evs.Events {
		types = append(types, e.Type)
		if e.Type == "tool.result" && !strings.Contains(e.Payload["content"].(string), "The launch is on Tuesday.") {
			t.Fatalf("tool.result: %v", e.Payload)
		}
	}
	if strings.Join(types, ",") != "approval.resolved,run.resumed,tool.result" {
		t.Fatalf("trace: %v", types)
	}
	p.waitJS(`document.querySelector('#approvals-empty')`, "the list to empty after approving")

	// Denied, live: the page shows the new call without a reload.
	if st := c.call(t, org, user, "POST", "/api/runs", map[string]any{"input": "read it again"}, &created); st != 201 {
		t.Fatalf("create run: %d", st)
	}
	p.waitJS(card, "the second call to appear live")
	p.run(chromedp.SendKeys(chromedp.CSS(`.approval-card[data-status="pending"] .approval-reason-input`), "not today"),
		chromedp.Click(chromedp.CSS(`.approval-card[data-status="pending"] .approval-deny`)))
	if st := c.waitRun(t, org, user, created.RunID); st != "completed" {
		t.Fatalf("denied run: %s", st)
	}
	reqs := srv.Requests()
	last := reqs[len(reqs)-1]
	if tool := last.Messages[len(last.Messages)-1]; tool.Role != llm.RoleTool || tool.Content != "denied by user:"+user+": not today" {
		t.Fatalf("the model was told %q (%s)", tool.Content, tool.Role)
	}
	p.waitJS(`document.querySelector('#approvals-empty')`, "the list to empty after denying")
	p.screenshot("approvals")
}

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
)

// startApprovalDaemon runs a daemon on PostgreSQL (the database at dbURL)
// whose model is srv, with the tool policy as configured by default: its
// built-in rules ask about a write_file outside the scratch folder.
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
		Heartbeat: time.Second}
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
		return llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "write_file", Arguments: `{"path":"plan.md","content":"The launch is on Tuesday.\n"}`}}}
	})
	dbURL, dataDir := testenv.PostgresURL(t), t.TempDir()
	d1 := startApprovalDaemon(t, dbURL, dataDir, srv)
	c1 := &console{url: d1.URL()}
	var created struct {
		RunID string `json:"run_id"`
	}
	if st := c1.call(t, org, user, "POST", "/api/runs", map[string]any{"input": "write the plan down"}, &created); st != 201 {
		t.Fatalf("create run: %d", st)
	}
	c1.waitStatus(t, org, user, created.RunID, "waiting_approval")
	if n := srv.RequestCount(); n != 1 {
		t.Fatalf("model asked %d times before the approval", n)
	}
	if _, err := os.Stat(filepath.Join(d1.Config.Workspace(), "plan.md")); !os.IsNotExist(err) {
		t.Fatalf("the file was written before the approval: %v", err)
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
	if got := p.str(card + `.querySelector('.approval-args').textContent`); !strings.Contains(got, `"path": "plan.md"`) {
		t.Fatalf("arguments shown: %q", got)
	}
	if got := p.str(card + `.querySelector('.approval-reason').textContent`); !strings.Contains(got, `write_file writes "plan.md", outside the scratch folder`) {
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
	if !strings.HasPrefix(run.Output, "The tool said: created plan.md") {
		t.Fatalf("output: %q", run.Output)
	}
	if got, err := os.ReadFile(filepath.Join(d2.Config.Workspace(), "plan.md")); err != nil || string(got) != "The launch is on Tuesday.\n" {
		t.Fatalf("the approved write: %q, %v", got, err)
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
		if e.Type == "tool.result" && !strings.Contains(e.Payload["content"].(string), "plan.md") {
			t.Fatalf("tool.result: %v", e.Payload)
		}
	}
	if strings.Join(types, ",") != "approval.resolved,run.resumed,tool.result" {
		t.Fatalf("trace: %v", types)
	}
	p.waitJS(`document.querySelector('#approvals-empty')`, "the list to empty after approving")

	// Denied, live: the page shows the new call without a reload.
	if err := os.Remove(filepath.Join(d2.Config.Workspace(), "plan.md")); err != nil {
		t.Fatal(err)
	}
	if st := c.call(t, org, user, "POST", "/api/runs", map[string]any{"input": "write it again"}, &created); st != 201 {
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
	if _, err := os.Stat(filepath.Join(d2.Config.Workspace(), "plan.md")); !os.IsNotExist(err) {
		t.Fatalf("a denied write happened: %v", err)
	}
	p.waitJS(`document.querySelector('#approvals-empty')`, "the list to empty after denying")
	p.screenshot("approvals")
}

package web_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/internal/testpdf"
	"github.com/openintern/openintern/llm"
)

const chromiumPath = "/usr/bin/chromium"

// console is the daemon as `openintern serve` runs it (SQLite store,
// in-process bus, the memory service with the hash embedder, the groups'
// blackboard, the web console) with the offline model waiting a little
// between streamed words.
type console struct {
	url       string
	workspace string
}

func startConsole(t *testing.T) *console {
	t.Helper()
	return startConsoleWith(t, 35*time.Millisecond)
}

// startConsoleWith starts a console whose offline model waits tokenDelay
// between streamed words.
func startConsoleWith(t *testing.T, tokenDelay time.Duration) *console {
	t.Helper()
	c, _ := startDaemon(t, tokenDelay, nil)
	return c
}

// startDaemon starts the console's daemon with the config changed by
// configure (when not nil), and returns the daemon too for its store.
func startDaemon(t *testing.T, tokenDelay time.Duration, configure func(*config.Config)) (*console, *daemon.Main) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := config.Default()
	cfg.Port = 0
	cfg.DataDir = t.TempDir()
	cfg.MaxRunningAgents = 8
	cfg.MaxStepsPerRun = 8
	cfg.AgentIdleTimeout = config.Duration(time.Minute)
	cfg.SessionHistory = 10
	if configure != nil {
		configure(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := &daemon.Main{
		Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Model: &llm.Offline{TokenDelay: tokenDelay}, Heartbeat: time.Second,
	}
	if err := d.Run(ctx); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("stop daemon: %v", err)
		}
	})
	return &console{url: d.URL(), workspace: cfg.Workspace()}, d
}

// call is a JSON request to the API as org/user.
func (c *console) call(t *testing.T, org, user, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, c.url+path, rd)
	req.Header.Set("x-org-id", org)
	req.Header.Set("x-user-id", user)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

func (c *console) waitRun(t *testing.T, org, user, runID string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var run struct {
			Status string `json:"status"`
		}
		c.call(t, org, user, "GET", "/api/runs/"+runID, nil, &run)
		switch run.Status {
		case "completed", "failed", "cancelled":
			return run.Status
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %q", runID, run.Status)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// browserSession is one headless Chromium shared by the subtests.
type browserSession struct {
	ctx        context.Context
	downloads  string
	exceptions []string
	mu         sync.Mutex
}

func startBrowser(t *testing.T) *browserSession {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Debian's chromium at %s (scripts/services.sh installs it): %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	b := &browserSession{ctx: ctx, downloads: t.TempDir()}
	// The first call starts the browser and must not carry a timeout (it would
	// end the browser with it), so the start is bounded from outside.
	started := make(chan error, 1)
	go func() {
		events := true
		_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: b.downloads, EventsEnabled: &events,
		})
		started <- err
	}()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("headless chromium (%s) could not start: %v", chromiumPath, err)
		}
	case <-time.After(30 * time.Second):
		cancelBrowser()
		t.Fatalf("headless chromium (%s) did not start within 30 s", chromiumPath)
	}
	return b
}

func (b *browserSession) listen(ev any) {
	var e *runtime.EventExceptionThrown
	switch v := ev.(type) {
	case *runtime.EventExceptionThrown:
		e = v
	case runtime.EventExceptionThrown:
		e = &v
	}
	if e != nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		msg := e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
		b.exceptions = append(b.exceptions, msg)
	}
}

func (b *browserSession) takeExceptions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.exceptions
	b.exceptions = nil
	return out
}

// page is one tab, bounded in time, that fails its test on JavaScript errors.
type page struct {
	t   *testing.T
	ctx context.Context
	b   *browserSession
	c   *console
}

func (b *browserSession) page(t *testing.T, c *console) *page {
	t.Helper()
	tabCtx, cancelTab := chromedp.NewContext(b.ctx)
	ctx, cancel := context.WithTimeout(tabCtx, 25*time.Second)
	if err := chromedp.Listen(tabCtx, b.listen); err != nil {
		t.Fatalf("open a browser tab: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cancelTab()
		if ex := b.takeExceptions(); len(ex) > 0 {
			t.Errorf("JavaScript errors on the page: %s", strings.Join(ex, "; "))
		}
	})
	p := &page{t: t, ctx: ctx, b: b, c: c}
	p.run(chromedp.EmulateViewport(1280, 860))
	return p
}

func (p *page) run(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("browser: %v\npage text:\n%s", err, p.text())
	}
}

// open loads a console path (with its query) and waits for the shell.
func (p *page) open(path string) {
	p.t.Helper()
	p.run(chromedp.Navigate(p.c.url + path))
	p.waitJS(`document.querySelector('#main') && document.querySelector('#main').children.length > 0 && document.querySelector('#scope-text').textContent !== '…'`, "the console to start on "+path)
}

func (p *page) text() string {
	var s string
	ctx, cancel := context.WithTimeout(p.ctx, 3*time.Second)
	defer cancel()
	s, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	if len(s) > 3000 {
		s = s[:3000] + "…"
	}
	return s
}

// str evaluates a JavaScript expression that gives a string.
func (p *page) str(js string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v\npage text:\n%s", js, err, p.text())
	}
	return v
}

// js runs a JavaScript expression for its effect.
func (p *page) js(js string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Evaluate[any](js)); err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
}

// waitJS polls a JavaScript expression until it is truthy.
func (p *page) waitJS(js, what string) {
	p.t.Helper()
	deadline := time.Now().Add(12 * time.Second)
	for {
		ok, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](`!!(`+js+`)`))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) || p.ctx.Err() != nil {
			p.t.Fatalf("waited in vain for %s (last error: %v)\npage text:\n%s", what, err, p.text())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (p *page) screenshot(name string) {
	p.t.Helper()
	// A full-page shot of a scrolled page draws the sticky top bar mid-page.
	p.js(`window.scrollTo(0, 0)`)
	buf, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := artifactsDir(p.t)
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// artifactsDir is test-artifacts/screenshots at the module root (gitignored).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	out := filepath.Join(dir, "test-artifacts", "screenshots")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestConsoleInBrowser(t *testing.T) {
	start := time.Now()
	c := startConsole(t)
	b := startBrowser(t)
	if err := os.WriteFile(filepath.Join(c.workspace, "notes.txt"), []byte("The launch is on Tuesday. 周二发布。\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const acme = "?org_id=acme&user_id=alice"
	var chatRunID string

	t.Run("chat streams the answer and folds in tool calls", func(t *testing.T) {
		p := b.page(t, c)
		p.open("/" + acme)
		p.waitJS(`document.querySelector('#chat-agent option[value=main]')`, "the agent picker")
		p.waitJS(`document.querySelector('#chat-empty')`, "the empty session")
		msg := "hello from the browser, 你好 there are many words in this message so the answer streams for a while"
		p.run(chromedp.SendKeys(chromedp.CSS("#chat-input"), msg), chromedp.Click(chromedp.CSS("#chat-send")))
		// The answer is seen part way, token by token, before it is complete.
		p.waitJS(`(() => { const a = document.querySelector('.turn .answer.streaming'); return a && a.textContent.length > 0 && a.textContent.length < 40; })()`,
			"a partly streamed answer")
		p.waitJS(`document.querySelector('.turn[data-status=completed] .answer')`, "the completed answer")
		answer := p.str(`document.querySelector('.turn[data-status=completed] .answer').textContent`)
		if !strings.Contains(answer, "You said") || !strings.Contains(answer, "你好") {
			t.Fatalf("answer %q does not quote the message", answer)
		}
		chatRunID = p.str(`document.querySelector('.turn').dataset.runId`)
		if !strings.HasPrefix(chatRunID, "run_") {
			t.Fatalf("turn has no run id: %q", chatRunID)
		}

		// A tool call is folded into the answer and opens to show its result.
		p.run(chromedp.SendKeys(chromedp.CSS("#chat-input"), "read file notes.txt"), chromedp.Click(chromedp.CSS("#chat-send")))
		p.waitJS(`document.querySelectorAll('.turn[data-status=completed]').length === 2`, "the second answer")
		p.waitJS(`document.querySelector('.turn:last-child details.tool .tool-name')?.textContent === 'read_file'`, "the folded read_file call")
		if p.str(`String(document.querySelector('.turn:last-child details.tool').open)`) != "false" {
			t.Fatal("the tool call should start folded")
		}
		p.run(chromedp.Click(chromedp.CSS(".turn:last-child details.tool summary")))
		p.waitJS(`document.querySelector('.turn:last-child details.tool').open && document.querySelector('.turn:last-child .tool-result').textContent.includes('Tuesday')`, "the tool result")
		p.screenshot("chat")

		// Reloading shows the session's history, tool calls still foldable.
		p.open("/" + acme)
		p.waitJS(`document.querySelectorAll('.turn').length === 2 && document.querySelector('.turn .msg-user .msg-body').textContent.includes('你好')`, "the session history")
		p.run(chromedp.Click(chromedp.CSS(".turn:last-child details.steps-fold summary")))
		p.waitJS(`document.querySelector('.turn:last-child .steps-fold .tool-result')?.textContent.includes('周二')`, "the history's tool call")

		// On a phone-sized screen.
		p.run(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		p.open("/" + acme)
		p.waitJS(`document.querySelectorAll('.turn').length === 2`, "the history on a phone")
		p.screenshot("chat-phone")
	})

	t.Run("trace shows the steps and exports JSON", func(t *testing.T) {
		if chatRunID == "" {
			t.Skip("needs the chat run")
		}
		p := b.page(t, c)
		p.open("/" + acme)
		p.waitJS(`document.querySelector('.turn a[href^="/trace/"]')`, "the trace link")
		p.run(chromedp.Click(chromedp.CSS(`.turn a[href^="/trace/` + chatRunID + `"]`)))
		p.waitJS(`location.pathname === '/trace/`+chatRunID+`'`, "the trace page")
		p.waitJS(`document.querySelector('[data-type="llm.called"]') && document.querySelector('[data-type="run.completed"]')`, "llm.called and run.completed")
		p.waitJS(`document.querySelector('#trace-status .badge')?.textContent === 'completed'`, "the completed status")

		p.run(chromedp.Click(chromedp.CSS("#trace-export")))
		file := filepath.Join(b.downloads, "trace-"+chatRunID+".json")
		deadline := time.Now().Add(10 * time.Second)
		for {
			raw, err := os.ReadFile(file)
			if err == nil {
				var exp struct {
					Run struct {
						RunID string `json:"run_id"`
					} `json:"run"`
					Events []struct {
						Type string `json:"type"`
					} `json:"events"`
				}
				if json.Unmarshal(raw, &exp) == nil && exp.Run.RunID == chatRunID && len(exp.Events) > 0 {
					if exp.Events[len(exp.Events)-1].Type != "run.completed" {
						t.Fatalf("export ends with %q", exp.Events[len(exp.Events)-1].Type)
					}
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no exported trace at %s: %v", file, err)
			}
			time.Sleep(50 * time.Millisecond)
		}

		// The trace of the tool-calling run shows the call, its arguments and result.
		var runs struct {
			Runs []struct {
				RunID string `json:"run_id"`
				Input string `json:"input"`
			} `json:"runs"`
		}
		c.call(t, "acme", "alice", "GET", "/api/runs?limit=10", nil, &runs)
		var toolRun string
		for _, r := range runs.Runs {
			if r.Input == "read file notes.txt" {
				toolRun = r.RunID
			}
		}
		p.open("/trace/" + toolRun + acme)
		p.waitJS(`document.querySelector('[data-type="tool.called"]')?.textContent.includes('notes.txt') && document.querySelector('[data-type="tool.result"]')?.textContent.includes('Tuesday')`, "the tool call in the trace")
		p.waitJS(`document.querySelectorAll('.step').length >= 2`, "two steps")
		p.screenshot("trace")
	})

	t.Run("trace is live while the run goes", func(t *testing.T) {
		if code := c.call(t, "acme", "alice", "POST", "/api/agents", map[string]string{"agent_id": "slow", "name": "Slow"}, nil); code != http.StatusCreated {
			t.Fatalf("create agent: %d", code)
		}
		if code := c.call(t, "acme", "alice", "POST", "/api/agents/slow/pause", nil, nil); code != http.StatusOK {
			t.Fatalf("pause: %d", code)
		}
		var run struct {
			RunID string `json:"run_id"`
		}
		c.call(t, "acme", "alice", "POST", "/api/runs", map[string]string{"agent_id": "slow", "session_key": "live", "input": "say something while I watch"}, &run)
		p := b.page(t, c)
		p.open("/trace/" + run.RunID + acme)
		p.waitJS(`document.querySelector('#trace-live')?.dataset.state === 'live' && document.querySelector('#trace-status .badge')?.textContent === 'pending'`, "a live trace of the pending run")
		c.call(t, "acme", "alice", "POST", "/api/agents/slow/resume", nil, nil)
		p.waitJS(`document.querySelector('[data-type="run.completed"]') && document.querySelector('#trace-status .badge')?.textContent === 'completed'`, "the run to complete on the open page")
		p.waitJS(`document.querySelector('#trace-live')?.dataset.state === 'ended'`, "the stream to end")
	})

	t.Run("runs page lists and filters", func(t *testing.T) {
		// A cancelled run to filter for: queued on a paused agent, then cancelled.
		c.call(t, "acme", "alice", "POST", "/api/agents/slow/pause", nil, nil)
		var run struct {
			RunID string `json:"run_id"`
		}
		c.call(t, "acme", "alice", "POST", "/api/runs", map[string]string{"agent_id": "slow", "session_key": "later", "input": "never mind"}, &run)
		c.call(t, "acme", "alice", "POST", "/api/runs/"+run.RunID+"/cancel", nil, nil)
		c.call(t, "acme", "alice", "POST", "/api/agents/slow/resume", nil, nil)
		c.waitRun(t, "acme", "alice", run.RunID)

		p := b.page(t, c)
		p.open("/runs" + acme)
		p.waitJS(`document.querySelector('.run-row[data-run-id="`+chatRunID+`"]')`, "the chat run in the list")
		p.waitJS(`document.querySelectorAll('.run-row[data-run-id]').length === 4`, "all four runs")
		p.screenshot("runs")
		p.js(`(() => { const s = document.querySelector("#runs-status"); s.value = "cancelled"; s.dispatchEvent(new Event("change")); })()`)
		p.waitJS(`(() => { const rows = [...document.querySelectorAll('.run-row[data-run-id]')]; return rows.length === 1 && rows[0].dataset.runId === `+jsString(run.RunID)+` && rows[0].dataset.status === 'cancelled'; })()`, "only the cancelled run")
		p.waitJS(`location.search.includes('status=cancelled')`, "the filter in the URL")
		p.js(`(() => { const s = document.querySelector("#runs-status"); s.value = "completed"; s.dispatchEvent(new Event("change")); })()`)
		p.waitJS(`(() => { const rows = [...document.querySelectorAll('.run-row[data-run-id]')]; return rows.length === 3 && rows.every(r => r.dataset.status === 'completed'); })()`, "only completed runs")
		p.js(`(() => { const s = document.querySelector("#runs-status"); s.value = "failed"; s.dispatchEvent(new Event("change")); })()`)
		p.waitJS(`document.querySelector('#runs-empty')`, "no failed runs")
		// Filters by session from a shared link.
		p.open("/runs" + acme + "&session_key=live")
		p.waitJS(`document.querySelectorAll('.run-row[data-run-id]').length === 1 && document.querySelector('#runs-session').value === 'live'`, "the live session's run")
	})

	t.Run("long run lists are paged", func(t *testing.T) {
		// Runs queued on a paused agent stay pending: a long list at no cost.
		c.call(t, "paged", "pat", "POST", "/api/agents/main/pause", nil, nil)
		for i := range 27 {
			if code := c.call(t, "paged", "pat", "POST", "/api/runs", map[string]string{"session_key": "s", "input": fmt.Sprintf("task %02d", i)}, nil); code != http.StatusCreated {
				t.Fatalf("create run %d: %d", i, code)
			}
		}
		p := b.page(t, c)
		p.open("/runs?org_id=paged&user_id=pat")
		p.waitJS(`document.querySelectorAll('.run-row[data-run-id]').length === 25 && document.querySelector('.pager-info')?.textContent === 'page 1 of 2 · 27 runs'`, "the first page of 25")
		p.run(chromedp.Click(chromedp.CSS(".pager-next")))
		p.waitJS(`document.querySelectorAll('.run-row[data-run-id]').length === 2 && location.search.includes('page=2')`, "the second page of 2")
		p.waitJS(`document.querySelector('.run-row[data-run-id] .run-input')?.textContent === 'task 01'`, "the oldest runs last")
	})

	t.Run("agents page creates, pauses and resumes", func(t *testing.T) {
		p := b.page(t, c)
		p.open("/agents" + acme)
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=main]')`, "the main agent")
		p.run(chromedp.Click(chromedp.CSS("#agent-new")),
			chromedp.SendKeys(chromedp.CSS(`#agent-create input[name=name]`), "Writer 写手"),
			chromedp.SendKeys(chromedp.CSS(`#agent-create input[name=agent_id]`), "writer"),
			chromedp.Click(chromedp.CSS(`#agent-create button[type=submit]`)))
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=writer][data-state=idle] .agent-name')?.textContent === 'Writer 写手'`, "the new agent, idle")
		p.run(chromedp.Click(chromedp.CSS(`.agent-row[data-agent-id=writer] .agent-toggle`)))
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=writer] .agent-state .badge')?.textContent === 'paused'`, "the paused state")
		var agent struct {
			State string `json:"state"`
		}
		c.call(t, "acme", "alice", "GET", "/api/agents/writer", nil, &agent)
		if agent.State != "paused" {
			t.Fatalf("agent state in the API: %q, want paused", agent.State)
		}
		// A message to a paused agent waits in its inbox: unread 1.
		p.run(chromedp.Click(chromedp.CSS(`.agent-row[data-agent-id=writer] .agent-message-toggle`)),
			chromedp.SendKeys(chromedp.CSS(`.agent-row[data-agent-id=writer] textarea`), "draft a haiku"),
			chromedp.Click(chromedp.CSS(`.agent-row[data-agent-id=writer] .agent-message button[type=submit]`)))
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=writer] .agent-unread')?.textContent === '1'`, "one unread message")
		p.screenshot("agents")
		p.run(chromedp.Click(chromedp.CSS(`.agent-row[data-agent-id=writer] .agent-toggle`)))
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=writer] .agent-toggle')?.textContent === 'Pause'`, "the resumed agent")
		// The queued message runs; polling shows the inbox drained.
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=writer] .agent-unread')?.textContent === '0' && document.querySelector('.agent-row[data-agent-id=writer]').dataset.state === 'idle'`, "the inbox drained")
	})

	// memorySearch searches on the memory page and waits for the answer.
	memorySearch := func(p *page, q, typ string) {
		p.t.Helper()
		p.run(chromedp.SetValue(chromedp.CSS("#memory-q"), q))
		p.js(`document.querySelector('#memory-type').value = ` + jsString(typ))
		p.run(chromedp.Click(chromedp.CSS("#memory-search-btn")))
		p.waitJS(`(() => { const l = document.querySelector('#memory-results'); return l.dataset.q === `+jsString(q)+` && l.dataset.type === `+jsString(typ)+`; })()`, "the results for "+q)
	}
	rowIDs := func(p *page) string {
		return p.str(`[...document.querySelectorAll('#memory-results .memory-row')].map(r => r.dataset.memoryId).join(',')`)
	}
	var noteID, zhID, fileID string
	const noteText = "The quarterly launch moved to Thursday because the venue flooded."
	const zhText = "项目代号是青鸟，预算为三十万元，由王经理负责。"

	t.Run("memory page adds notes, searches, reads and shows the legs", func(t *testing.T) {
		p := b.page(t, c)
		p.open("/memory" + acme)
		p.waitJS(`document.querySelector('.page-memory h1')?.textContent === 'Memory' && document.querySelector('#memory-intro')`, "the memory page")
		if p.str(`document.querySelector('a[data-nav=memory]').getAttribute('aria-current') || ''`) != "page" {
			t.Fatal("the Memory tab is not marked current")
		}

		// An English note, episodic (the default type).
		p.run(chromedp.Click(chromedp.CSS("#memory-add-toggle")),
			chromedp.SendKeys(chromedp.CSS("#memory-note textarea"), noteText),
			chromedp.Click(chromedp.CSS(`#memory-note button[type=submit]`)))
		p.waitJS(`document.querySelector('#memory-text')?.textContent === `+jsString(noteText), "the saved note in full")
		noteID = p.str(`document.querySelector('#memory-detail-id').textContent`)
		if !strings.HasPrefix(noteID, "mem_") || p.str(`document.querySelector('#memory-detail .badge-type').textContent`) != "episodic" {
			t.Fatalf("saved note: id %q, type %q", noteID, p.str(`document.querySelector('#memory-detail .badge-type').textContent`))
		}
		// A Chinese note, archival.
		p.run(chromedp.Click(chromedp.CSS("#memory-add-toggle")))
		p.js(`document.querySelector('#memory-note-type').value = 'archival'`)
		p.run(chromedp.SendKeys(chromedp.CSS("#memory-note textarea"), zhText),
			chromedp.Click(chromedp.CSS(`#memory-note button[type=submit]`)))
		p.waitJS(`document.querySelector('#memory-text')?.textContent === `+jsString(zhText)+` && document.querySelector('#memory-detail .badge-type').textContent === 'archival'`, "the Chinese note in full")
		zhID = p.str(`document.querySelector('#memory-detail-id').textContent`)
		if zhID == noteID || !strings.HasPrefix(zhID, "mem_") {
			t.Fatalf("second note id %q", zhID)
		}

		// English query: the note comes first, found by its words (full-text leg, perhaps also vector).
		memorySearch(p, "venue flooded", "")
		first := p.str(`document.querySelector('#memory-results .memory-row')?.dataset.memoryId || ''`)
		leg := p.str(`document.querySelector('#memory-results .memory-row').dataset.foundBy`)
		if first != noteID || (leg != "both" && leg != "fulltext") {
			t.Fatalf("search 'venue flooded': first %q found by %q; rows %s", first, leg, rowIDs(p))
		}
		badge := p.str(`document.querySelector('#memory-results .memory-row .leg').textContent`)
		if want := map[string]string{"both": "both", "fulltext": "full-text"}[leg]; badge != want {
			t.Fatalf("leg badge %q, want %q", badge, want)
		}
		if !strings.Contains(p.str(`location.search`), "q=venue+flooded") {
			t.Fatalf("query not in the URL: %s", p.str(`location.search`))
		}
		// Chinese query: the Chinese note first.
		memorySearch(p, "青鸟项目的预算", "")
		if first := p.str(`document.querySelector('#memory-results .memory-row')?.dataset.memoryId || ''`); first != zhID {
			t.Fatalf("search 青鸟项目的预算: first %q, want %s; rows %s", first, zhID, rowIDs(p))
		}
		if s := p.str(`document.querySelector('#memory-results .memory-row .memory-snippet').textContent`); !strings.Contains(s, "青鸟") {
			t.Fatalf("snippet %q", s)
		}
		// The type filter: only episodic memories, so not the archival Chinese note.
		memorySearch(p, "青鸟项目的预算", "episodic")
		if ids := rowIDs(p); strings.Contains(ids, zhID) {
			t.Fatalf("episodic filter shows the archival note: %s", ids)
		}
		if p.str(`[...document.querySelectorAll('#memory-results .memory-row')].every(r => r.dataset.type === 'episodic') ? 'ok' : 'no'`) != "ok" {
			t.Fatal("the episodic filter shows other types")
		}
		// Every hit says which leg found it.
		memorySearch(p, "launch", "")
		if bad := p.str(`[...document.querySelectorAll('#memory-results .memory-row')].filter(r => !['both','vector','fulltext'].includes(r.dataset.foundBy) || !r.querySelector('.leg')).length + ''`); bad != "0" {
			t.Fatalf("%s hits without a leg", bad)
		}

		// Read one in full from the results; the link to it opens the same view.
		memorySearch(p, "venue flooded", "")
		p.run(chromedp.Click(chromedp.CSS(`#memory-results .memory-row[data-memory-id="` + noteID + `"]`)))
		p.waitJS(`document.querySelector('#memory-detail-id')?.textContent === `+jsString(noteID)+` && document.querySelector('#memory-text').textContent === `+jsString(noteText)+` && document.querySelector('.memory-row.selected')?.dataset.memoryId === `+jsString(noteID), "the note in full")
		p.waitJS(`location.search.includes('id=`+noteID+`')`, "the open memory in the URL")
		p.screenshot("memory")
		p.open("/memory" + acme + "&q=venue+flooded&id=" + noteID)
		p.waitJS(`document.querySelector('#memory-text')?.textContent === `+jsString(noteText)+` && document.querySelector('#memory-q').value === 'venue flooded' && document.querySelector('.memory-row.selected')`, "the shared link's view")
		p.run(chromedp.Click(chromedp.CSS("#memory-close")))
		p.waitJS(`document.querySelector('#memory-detail').hidden && !new URLSearchParams(location.search).has('id')`, "the closed memory")

		// On a phone-sized screen, the open memory comes first.
		p.run(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		p.open("/memory" + acme + "&q=" + "青鸟项目的预算" + "&id=" + zhID)
		p.waitJS(`document.querySelector('#memory-text')?.textContent === `+jsString(zhText)+` && document.querySelector('#memory-results .memory-row')`, "the memory on a phone")
		p.screenshot("memory-phone")
	})

	t.Run("memory page uploads a markdown file and deletes it", func(t *testing.T) {
		md := filepath.Join(t.TempDir(), "launch-plan.md")
		if err := os.WriteFile(md, []byte("# Launch plan\n\nThe mascot is a purple otter named Pemberton.\n\n## 场地\n\n发布会在杭州举行。\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p := b.page(t, c)
		p.open("/memory" + acme)
		p.waitJS(`document.querySelector('#memory-intro')`, "the memory page")
		p.run(chromedp.Click(chromedp.CSS("#memory-upload-toggle")))
		p.waitJS(`document.querySelector('#memory-upload').disabled`, "the upload button waiting for a file")
		p.run(chromedp.SetUploadFiles(chromedp.CSS("#memory-file"), []string{md}))
		p.waitJS(`document.querySelector('.memory-file-name').textContent.startsWith('launch-plan.md') && !document.querySelector('#memory-upload').disabled`, "the chosen file")
		p.run(chromedp.Click(chromedp.CSS("#memory-upload")))
		p.waitJS(`document.querySelector('#memory-upload-result')?.textContent.includes('Stored launch-plan.md as archival memory')`, "the upload's feedback")
		fileID = p.str(`document.querySelector('#memory-upload-result code').textContent`)
		p.waitJS(`document.querySelector('#memory-detail-id')?.textContent === `+jsString(fileID)+` && document.querySelector('.memory-filename')?.textContent === 'launch-plan.md' && document.querySelector('#memory-text').textContent.includes('purple otter')`, "the uploaded file in full")
		p.screenshot("memory-upload")
		// Its content is found, by English and by Chinese words.
		memorySearch(p, "purple otter mascot", "archival")
		if first := p.str(`document.querySelector('#memory-results .memory-row')?.dataset.memoryId || ''`); first != fileID {
			t.Fatalf("search 'purple otter mascot': first %q, want %s; rows %s", first, fileID, rowIDs(p))
		}
		memorySearch(p, "发布会在哪里举行", "")
		if first := p.str(`document.querySelector('#memory-results .memory-row')?.dataset.memoryId || ''`); first != fileID {
			t.Fatalf("search 发布会在哪里举行: first %q, want %s; rows %s", first, fileID, rowIDs(p))
		}

		// A file that is not text is refused in words before any upload.
		bin := filepath.Join(t.TempDir(), "photo.png")
		if err := os.WriteFile(bin, []byte{0x89, 'P', 'N', 'G'}, 0o644); err != nil {
			t.Fatal(err)
		}
		p.run(chromedp.SetUploadFiles(chromedp.CSS("#memory-file"), []string{bin}))
		p.waitJS(`document.querySelector('#memory-upload-result .error-box')?.textContent.includes('not a .txt or .md file') && document.querySelector('#memory-upload').disabled`, "the refused file")

		// Delete, after a confirmation; cancelling keeps it.
		p.run(chromedp.Click(chromedp.CSS(`#memory-results .memory-row[data-memory-id="` + fileID + `"]`)))
		p.waitJS(`document.querySelector('#memory-detail-id')?.textContent === `+jsString(fileID), "the file's memory open")
		p.run(chromedp.Click(chromedp.CSS("#memory-delete")))
		p.waitJS(`!document.querySelector('#memory-confirm').hidden`, "the confirmation")
		p.screenshot("memory-delete-confirm")
		p.run(chromedp.Click(chromedp.CSS("#memory-delete-cancel")))
		p.waitJS(`document.querySelector('#memory-confirm').hidden && !document.querySelector('#memory-delete').hidden`, "the cancelled delete")
		if code := c.call(t, "acme", "alice", "GET", "/api/memories/"+fileID, nil, nil); code != http.StatusOK {
			t.Fatalf("after cancel: GET memory %d", code)
		}
		p.run(chromedp.Click(chromedp.CSS("#memory-delete")), chromedp.Click(chromedp.CSS("#memory-delete-confirm")))
		p.waitJS(`document.querySelector('#memory-detail').hidden && !document.querySelector('#memory-results .memory-row[data-memory-id="`+fileID+`"]')`, "the deleted memory gone")
		if code := c.call(t, "acme", "alice", "GET", "/api/memories/"+fileID, nil, nil); code != http.StatusNotFound {
			t.Fatalf("after delete: GET memory %d, want 404", code)
		}
		memorySearch(p, "purple otter mascot", "")
		if ids := rowIDs(p); strings.Contains(ids, fileID) {
			t.Fatalf("the deleted memory is still found: %s", ids)
		}
		// Opening the deleted memory's link says it is not found.
		p.open("/memory" + acme + "&id=" + fileID)
		p.waitJS(`document.querySelector('#memory-detail .error-box .error-title')?.textContent === 'Not found'`, "the deleted memory not found")
	})

	t.Run("memory page ingests a PDF as a job with live progress and cites its page", func(t *testing.T) {
		pdf := filepath.Join(t.TempDir(), "ferry-report.pdf")
		pages := [][]string{{"Ferry report, cover page."}, {"The night ferry to Skerry Island carries twelve bicycles."}}
		if err := os.WriteFile(pdf, testpdf.Make(pages), 0o644); err != nil {
			t.Fatal(err)
		}
		p := b.page(t, c)
		p.open("/memory" + acme)
		p.waitJS(`document.querySelector('#memory-intro')`, "the memory page")
		p.run(chromedp.Click(chromedp.CSS("#memory-upload-toggle")))
		p.run(chromedp.SetUploadFiles(chromedp.CSS("#memory-file"), []string{pdf}))
		p.waitJS(`!document.querySelector('#memory-upload').disabled`, "the chosen PDF")
		p.run(chromedp.Click(chromedp.CSS("#memory-upload")))
		p.waitJS(`document.querySelector('#memory-job')?.dataset.status === 'completed' && document.querySelector('#memory-job progress').value === 1`, "the job's progress to completion")
		p.screenshot("memory-job")
		memorySearch(p, "night ferry bicycles", "")
		p.waitJS(`document.querySelector('#memory-results .memory-row .citation')?.textContent.includes('ferry-report.pdf') && document.querySelector('#memory-results .memory-row .citation').textContent.includes('p. 2')`, "the hit's citation with its page")
	})

	t.Run("long memory results grow 20 at a time", func(t *testing.T) {
		for i := range 25 {
			body := map[string]string{"text": fmt.Sprintf("Meeting note %02d: the budget review for region %02d.", i, i)}
			if code := c.call(t, "many", "mia", "POST", "/api/memories", body, nil); code != http.StatusCreated {
				t.Fatalf("write memory %d: %d", i, code)
			}
		}
		p := b.page(t, c)
		p.open("/memory?org_id=many&user_id=mia&q=budget+review")
		p.waitJS(`document.querySelector('#memory-results').dataset.q === 'budget review' && document.querySelectorAll('#memory-results .memory-row').length === 20 && document.querySelector('#memory-more')`, "the first 20 results and a way to more")
		p.run(chromedp.Click(chromedp.CSS("#memory-more")))
		p.waitJS(`document.querySelectorAll('#memory-results .memory-row').length === 25 && !document.querySelector('#memory-more')`, "all 25 results")
		if p.str(`document.querySelector('#memory-status').textContent`)[:10] != "25 results" {
			t.Fatalf("status %q", p.str(`document.querySelector('#memory-status').textContent`))
		}
	})

	t.Run("agents page edits core memory blocks", func(t *testing.T) {
		p := b.page(t, c)
		p.open("/agents" + acme)
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=main]')`, "the main agent")
		p.run(chromedp.Click(chromedp.CSS(`.agent-row[data-agent-id=main] .agent-core-toggle`)))
		p.waitJS(`['human','notes','persona'].every(l => document.querySelector('.agent-row[data-agent-id=main] .core-block[data-label='+l+'] textarea'))`, "the default blocks")
		persona := `.agent-row[data-agent-id=main] .core-block[data-label=persona]`
		if p.str(`document.querySelector('`+persona+` .core-save').disabled ? 'disabled' : 'enabled'`) != "disabled" {
			t.Fatal("Save is enabled before any edit")
		}
		const value = "You are terse. 回答要简短。"
		p.run(chromedp.SendKeys(chromedp.CSS(persona+" textarea"), value))
		p.waitJS(`document.querySelector('`+persona+`').classList.contains('dirty') && !document.querySelector('`+persona+` .core-save').disabled`, "an unsaved edit")
		p.run(chromedp.Click(chromedp.CSS(persona + " .core-save")))
		p.waitJS(`document.querySelector('`+persona+`').dataset.saved === 'true' && !document.querySelector('`+persona+`').classList.contains('dirty') && document.querySelector('`+persona+` .core-when').textContent.startsWith('updated')`, "the saved block")
		// A new block by label.
		p.run(chromedp.SendKeys(chromedp.CSS(`.agent-row[data-agent-id=main] .core-new input`), "project"),
			chromedp.Click(chromedp.CSS(`.agent-row[data-agent-id=main] .core-new button`)))
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=main] .core-block[data-label=project] textarea')`, "the new block")
		p.run(chromedp.SendKeys(chromedp.CSS(`.agent-row[data-agent-id=main] .core-block[data-label=project] textarea`), "Project 青鸟, due in June."),
			chromedp.Click(chromedp.CSS(`.agent-row[data-agent-id=main] .core-block[data-label=project] .core-save`)))
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=main] .core-block[data-label=project]').dataset.saved === 'true'`, "the new block saved")

		var core struct {
			Blocks []struct {
				Label string `json:"label"`
				Value string `json:"value"`
			} `json:"blocks"`
		}
		c.call(t, "acme", "alice", "GET", "/api/agents/main/core-memory", nil, &core)
		got := map[string]string{}
		for _, bl := range core.Blocks {
			got[bl.Label] = bl.Value
		}
		if got["persona"] != value || got["project"] != "Project 青鸟, due in June." {
			t.Fatalf("core memory in the API: %+v", core.Blocks)
		}
		p.screenshot("agents-core-memory")
		// A fresh page shows the stored values.
		p.open("/agents" + acme)
		p.run(chromedp.Click(chromedp.CSS(`.agent-row[data-agent-id=main] .agent-core-toggle`)))
		p.waitJS(`document.querySelector('`+persona+` textarea')?.value === `+jsString(value), "the stored persona after reload")
		// Over the limit: Save is refused on the page.
		p.js(`(() => { const t = document.querySelector('` + persona + ` textarea'); t.value = 'x'.repeat(5000); t.dispatchEvent(new Event('input')); })()`)
		p.waitJS(`document.querySelector('`+persona+` .core-count').classList.contains('over') && document.querySelector('`+persona+` .core-save').disabled`, "the over-limit block")
		p.run(chromedp.Click(chromedp.CSS(persona + " .core-revert")))
		p.waitJS(`document.querySelector('`+persona+` textarea').value === `+jsString(value), "the reverted edit")
	})

	t.Run("another scope sees none of the memories", func(t *testing.T) {
		p := b.page(t, c)
		const globex = "?org_id=globex&user_id=bob"
		p.open("/memory" + globex + "&q=venue+flooded")
		p.waitJS(`document.querySelector('#memory-results').dataset.q === 'venue flooded' && document.querySelector('#memory-empty')`, "no results for globex")
		memorySearch(p, "青鸟项目的预算", "")
		p.waitJS(`document.querySelector('#memory-empty')`, "no Chinese results for globex")
		p.open("/memory" + globex + "&id=" + noteID)
		p.waitJS(`document.querySelector('#memory-detail .error-box .error-title')?.textContent === 'Not found'`, "acme's note not found")
		if text := p.str(`document.querySelector('#main').innerText`); strings.Contains(text, "venue flooded") || strings.Contains(text, "青鸟") {
			t.Fatalf("globex sees acme's memories: %s", text)
		}
		p.open("/agents" + globex)
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=main]')`, "globex's main agent")
		p.run(chromedp.Click(chromedp.CSS(`.agent-row[data-agent-id=main] .agent-core-toggle`)))
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=main] .core-block[data-label=persona] textarea')?.value === '' && !document.querySelector('.agent-row[data-agent-id=main] .core-block[data-label=project]')`, "globex's empty core memory")
		var res struct {
			Results []struct {
				ID string `json:"id"`
			} `json:"results"`
		}
		c.call(t, "globex", "bob", "GET", "/api/memories/search?q=launch&top_k=100", nil, &res)
		if len(res.Results) != 0 {
			t.Fatalf("globex's search API finds %d memories", len(res.Results))
		}
	})

	t.Run("another scope sees none of the first scope's data", func(t *testing.T) {
		p := b.page(t, c)
		p.open("/runs?org_id=globex&user_id=bob")
		p.waitJS(`document.querySelector('#runs-empty')`, "an empty run list")
		scope := p.str(`document.querySelector('#scope-text').textContent`)
		stored := p.str(`localStorage.getItem('openintern.scope')`)
		if scope != "globex / bob" || !strings.Contains(stored, `"globex"`) {
			t.Fatalf("scope shown %q, stored %q", scope, stored)
		}
		// The remembered scope applies to a link without one.
		p.open("/agents")
		p.waitJS(`location.search.includes('org_id=globex') && document.querySelector('.agent-row[data-agent-id=main]') && !document.querySelector('.agent-row[data-agent-id=writer]')`, "globex's agents only")
		p.open("/trace/" + chatRunID + "?org_id=globex&user_id=bob")
		p.waitJS(`document.querySelector('.error-box')?.textContent.includes('not found')`, "acme's run to be not found")
		text := p.str(`document.querySelector('#main').innerText`)
		if strings.Contains(text, "你好") {
			t.Fatalf("globex sees acme's run: %s", text)
		}
		// Changing the scope with the picker.
		p.open("/runs?org_id=globex&user_id=bob")
		p.waitJS(`document.querySelector('#runs-empty')`, "globex's empty list")
		p.run(chromedp.Click(chromedp.CSS("#scope-button")),
			chromedp.SetValue(chromedp.CSS(`#scope-panel input[name=org_id]`), "acme"),
			chromedp.SetValue(chromedp.CSS(`#scope-panel input[name=user_id]`), "alice"),
			chromedp.Click(chromedp.CSS(`#scope-panel button[type=submit]`)))
		p.waitJS(`document.querySelector('.run-row[data-run-id="`+chatRunID+`"]') && location.search.includes('org_id=acme')`, "acme's runs after switching")
	})

	t.Run("failed API calls show a readable error", func(t *testing.T) {
		p := b.page(t, c)
		p.open("/trace/run_00000000-0000-0000-0000-000000000000" + acme)
		p.waitJS(`document.querySelector('.error-box .error-title')?.textContent === 'Not found'`, "a not-found error")
		msg := p.str(`document.querySelector('.error-box .error-message').textContent`)
		if !strings.Contains(msg, "run_00000000-0000-0000-0000-000000000000") || !strings.Contains(msg, "not found") {
			t.Fatalf("error message %q", msg)
		}
		p.screenshot("trace-error")
		p.open("/runs?org_id=acme&user_id=alice&status=bogus")
		p.waitJS(`document.querySelector('.error-box')?.textContent.includes('status must be')`, "the bad filter explained")
		p.open("/no/such/page" + acme)
		p.waitJS(`document.querySelector('.error-box')?.textContent.includes('no page at /no/such/page')`, "the unknown page explained")
	})

	t.Run("with auth off nobody signs in", func(t *testing.T) {
		p := b.page(t, c)
		p.open("/agents" + acme)
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=main]') && document.querySelector('#who').hidden && location.search.includes('org_id=acme')`, "the console without a session")
		p.open("/signin?next=%2Fruns")
		p.waitJS(`document.querySelector('#signin-auth-off a')?.getAttribute('href') === '/runs'`, "the sign-in page saying auth is off")
	})

	t.Run("skills upload, show and delete", func(t *testing.T) {
		p := b.page(t, c)
		zipPath := filepath.Join(t.TempDir(), "pdf-forms.zip")
		writeSkillZip(t, zipPath, map[string]string{
			"pdf-forms/SKILL.md":      "---\nname: pdf-forms\ndescription: Fill PDF forms.\nallowed-tools: read_file, Bash\n---\n# PDF forms\nRun fill.py with the fields.\n",
			"pdf-forms/ref/fields.md": "Field names are case-sensitive.",
		})
		p.open("/skills" + acme)
		p.waitJS(`document.querySelector('#skills-empty')`, "the empty skills list")
		p.run(chromedp.SetUploadFiles(chromedp.CSS("#skills-file"), []string{zipPath}))
		p.waitJS(`!document.querySelector('#skills-upload').disabled`, "the chosen archive")
		p.run(chromedp.Click(chromedp.CSS("#skills-upload")))
		p.waitJS(`document.querySelector('.skill-row[data-skill="pdf-forms"]')`, "the uploaded skill listed")
		p.waitJS(`document.querySelector('#skill-body')?.textContent.includes('Run fill.py') && document.querySelector('#skill-files')?.textContent.includes('ref/fields.md') && document.querySelector('#skill-unknown-tools')?.textContent.includes('Bash')`, "the skill in full")
		p.screenshot("skills")
		// Delete, after a confirmation; cancelling keeps it.
		p.run(chromedp.Click(chromedp.CSS("#skill-delete")))
		p.waitJS(`!document.querySelector('#skill-confirm').hidden`, "the confirmation")
		p.run(chromedp.Click(chromedp.CSS("#skill-delete-cancel")))
		p.waitJS(`document.querySelector('#skill-confirm').hidden && !document.querySelector('#skill-delete').hidden`, "the cancelled delete")
		p.run(chromedp.Click(chromedp.CSS("#skill-delete")), chromedp.Click(chromedp.CSS("#skill-delete-confirm")))
		p.waitJS(`document.querySelector('#skills-empty') && !document.querySelector('.skill-row')`, "the skill deleted")
		if status := c.call(t, "acme", "alice", "GET", "/api/skills/pdf-forms", nil, nil); status != http.StatusNotFound {
			t.Fatalf("deleted skill: %d", status)
		}
	})

	t.Logf("browser tests took %s", time.Since(start).Round(time.Millisecond))
}

// writeSkillZip writes a zip of files (name → content) to path.
func writeSkillZip(t *testing.T, path string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

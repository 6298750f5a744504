package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/ingest/mineru/minerutest"
	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/internal/testpdf"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
)

// TestJobsPageMineruInBrowser: on the Jobs page a PDF URL is sent to (a
// local) MinerU; the job's card shows its pages advancing while MinerU
// works, live from the job's stream with no reload, then completed with
// every page; a task MinerU fails shows as failed with MinerU's reason; and
// a search on the Memory page cites page 37 of the document.
func TestJobsPageMineruInBrowser(t *testing.T) {
	fake := minerutest.New(t)
	fake.SetPollsBeforeDone(30)
	fake.FailIf = "broken"
	pages := make([][]string, 52)
	for i := range pages {
		pages[i] = []string{fmt.Sprintf("Chapter %d: Field work", i+1), "", "Routine notes about equipment and weather."}
	}
	pages[36] = append(pages[36], "", "The emperor penguin colony relocates when the sea ice breaks early.")
	pdf := testpdf.Make(pages)
	docs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		_, _ = w.Write(pdf)
	}))
	t.Cleanup(docs.Close)
	c, _ := startDaemon(t, 0, func(cfg *config.Config) {
		cfg.Mineru = config.DefaultMineru()
		cfg.Mineru.Enabled, cfg.Mineru.APIKey, cfg.Mineru.BaseURL = true, fake.APIKey, fake.BaseURL()
		cfg.Mineru.PollIntervalMs = 100
	})
	const scopeQ = "?org_id=acme&user_id=alice"
	b := startBrowser(t)
	p := b.page(t, c)
	p.open("/jobs" + scopeQ)
	p.waitJS(`document.querySelector('#jobs-empty')`, "the empty jobs list")
	p.js(`window.__sameDocument = true`)

	manual := docs.URL + "/field-manual.pdf"
	p.run(chromedp.SendKeys(chromedp.CSS("#jobs-mineru-url"), manual), chromedp.Click(chromedp.CSS("#jobs-mineru-submit")))
	card := `document.querySelector('.job-card[data-kind="mineru_pdf"]')`
	p.waitJS(card+`?.dataset.status === 'running' && +`+card+`.querySelector('progress').max === 52 && +`+card+`.querySelector('progress').value > 0 && +`+card+`.querySelector('progress').value < 52`,
		"the job's pages advancing while MinerU works")
	p.screenshot("jobs-running")
	p.waitJS(card+`?.dataset.status === 'completed' && +`+card+`.querySelector('progress').value === 52`, "the job completed with all 52 pages")
	if got := p.str(card + `.querySelector('.job-line').textContent`); !strings.Contains(got, "52/52 pages") || !strings.Contains(got, "new 1") {
		t.Fatalf("completed card says %q", got)
	}
	if got := p.str(card + `.querySelector('a.job-source').href`); got != manual {
		t.Fatalf("source link %q", got)
	}

	// A task MinerU fails, queued through the API, appears with its reason.
	if code := c.call(t, "acme", "alice", "POST", "/api/memories/ingest?mode=mineru&url="+docs.URL+"/broken.pdf", nil, nil); code != http.StatusAccepted {
		t.Fatalf("queue the broken PDF: %d", code)
	}
	failed := `document.querySelector('.job-card[data-status="failed"]')`
	p.waitJS(failed+`?.querySelector('.job-error')?.textContent.includes('the PDF is damaged')`, "the failed task's reason")
	if p.str(`String(window.__sameDocument)`) != "true" {
		t.Fatal("the page reloaded")
	}
	p.screenshot("jobs")

	p.open("/memory" + scopeQ + "&q=emperor+penguin+colony")
	p.waitJS(`document.querySelector('#memory-results .memory-row .citation')?.textContent.includes('p. 37')`, "the hit's citation of page 37")
	if strings.Contains(p.text(), fake.APIKey) {
		t.Fatal("the API key shows on the page")
	}
}

// TestMineruToolThroughAgent: with mineru.enabled the daemon offers
// mineru_ingest_pdf; an agent's call with a PDF of its workspace waits for
// the job and is told it completed with 52 pages, and the text is then
// found citing page 37. The model sees no API key.
func TestMineruToolThroughAgent(t *testing.T) {
	fake := minerutest.New(t)
	fake.SetPollsBeforeDone(3)
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		if last := req.Messages[len(req.Messages)-1]; last.Role == llm.RoleTool {
			return llmtest.Reply{Text: "The tool said: " + last.Content}
		}
		return llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "mineru_ingest_pdf", Arguments: `{"path":"papers/field.pdf","wait_seconds":40}`}}}
	})
	cfg := config.Default()
	cfg.Port, cfg.DataDir, cfg.AgentIdleTimeout = 0, t.TempDir(), config.Duration(time.Minute)
	cfg.Mineru = config.DefaultMineru()
	cfg.Mineru.Enabled, cfg.Mineru.APIKey, cfg.Mineru.BaseURL, cfg.Mineru.PollIntervalMs = true, fake.APIKey, fake.BaseURL(), 100
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pages := make([][]string, 52)
	for i := range pages {
		pages[i] = []string{fmt.Sprintf("Chapter %d: Field work", i+1), "", "Routine notes about equipment and weather."}
	}
	pages[36] = append(pages[36], "", "The emperor penguin colony relocates when the sea ice breaks early.")
	if err := os.MkdirAll(filepath.Join(cfg.Workspace(), "papers"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Workspace(), "papers", "field.pdf"), testpdf.Make(pages), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &daemon.Main{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Model: srv.Provider(), Heartbeat: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Run(ctx); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	t.Cleanup(func() { stopDaemon(t, d) })
	c := &console{url: d.URL()}
	var created struct {
		RunID string `json:"run_id"`
	}
	if st := c.call(t, "acme", "alice", "POST", "/api/runs", map[string]any{"input": "read the field manual"}, &created); st != http.StatusCreated {
		t.Fatalf("create run: %d", st)
	}
	deadline := time.Now().Add(60 * time.Second)
	var run struct {
		Status string `json:"status"`
		Output string `json:"output"`
	}
	for {
		c.call(t, "acme", "alice", "GET", "/api/runs/"+created.RunID, nil, &run)
		if run.Status == "completed" || run.Status == "failed" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if run.Status != "completed" || !strings.Contains(run.Output, `"status":"completed"`) || !strings.Contains(run.Output, `"pages":52`) {
		t.Fatalf("run %s: %q", run.Status, run.Output)
	}
	var found struct {
		Results []struct {
			Source struct {
				Source string `json:"source"`
				Page   int    `json:"page"`
			} `json:"source"`
		} `json:"results"`
	}
	c.call(t, "acme", "alice", "GET", "/api/memories/search?q=emperor+penguin+colony", nil, &found)
	if len(found.Results) == 0 || found.Results[0].Source.Source != "papers/field.pdf" || found.Results[0].Source.Page != 37 {
		t.Fatalf("search: %+v", found)
	}
	for _, r := range srv.Requests() {
		for _, m := range r.Messages {
			if strings.Contains(m.Content, fake.APIKey) {
				t.Fatal("the model saw the API key")
			}
		}
	}
}

package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/ingest/mineru/minerutest"
	"github.com/openintern/openintern/internal/testpdf"
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

package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/openintern/openintern/ingest"
	"github.com/openintern/openintern/ingest/mineru"
	"github.com/openintern/openintern/ingest/mineru/minerutest"
	"github.com/openintern/openintern/internal/testpdf"
	"github.com/openintern/openintern/store"
)

// fiftyPages is a 52-page PDF whose page 37 alone holds a sentence about
// emperor penguins.
func fiftyPages() []byte {
	pages := make([][]string, 52)
	for i := range pages {
		pages[i] = []string{fmt.Sprintf("Chapter %d: Field work", i+1), "", "Routine notes about equipment and weather."}
	}
	pages[36] = append(pages[36], "", "The emperor penguin colony relocates when the sea ice breaks early.")
	return testpdf.Make(pages)
}

// searchPage searches through the API and answers the top hit's source and page.
func (h *harness) searchPage(t *testing.T, q string) (string, int) {
	t.Helper()
	sr := h.must(http.StatusOK, request{method: "GET", path: "/api/memories/search?q=" + url.QueryEscape(q)})
	var found struct {
		Results []struct {
			Source *struct {
				Source string `json:"source"`
				Page   int    `json:"page"`
			} `json:"source"`
		} `json:"results"`
	}
	if err := json.Unmarshal(sr.body, &found); err != nil || len(found.Results) == 0 || found.Results[0].Source == nil {
		t.Fatalf("search %q: %s", q, sr.body)
	}
	return found.Results[0].Source.Source, found.Results[0].Source.Page
}

// TestMineruIngestAPI: POST /api/memories/ingest with mode=mineru sends a
// 52-page PDF to (a local) MinerU as a job; its stream ends completed, and
// a search through the API finds page 37's sentence citing page 37. The
// same PDF uploaded without a mode (read here with pdftotext) is found the
// same way. Bad modes, a missing document and non-PDFs are 400, and a
// daemon without MinerU answers 501.
func TestMineruIngestAPI(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			js := h.store.(store.JobStore)
			fake := minerutest.New(t)
			fake.SetPollsBeforeDone(3)
			client, err := mineru.New(mineru.Config{BaseURL: fake.BaseURL(), APIKey: fake.APIKey, PollInterval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if res := h.do(request{method: "POST", path: "/api/memories/ingest?mode=mineru&url=https://example.com/a.pdf"}); res.status != http.StatusNotImplemented {
				t.Fatalf("mineru off: %d %s", res.status, res.body)
			}
			h.api.jobs.KindMineru = mineru.KindPDF
			r, err := ingest.NewRunner(ingest.RunnerConfig{Store: js, Poll: 20 * time.Millisecond,
				Kinds: []ingest.Kind{ingest.LocalFiles{Store: js, Memories: h.mem}, mineru.Kind{Client: client, Store: js, Memories: h.mem}}})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Stop(context.Background()) })

			body, ct := multipartFiles(t, []uploadFile{{name: "manuals/field.pdf", data: fiftyPages()}}, map[string]string{"mode": "mineru"})
			res := h.do(request{method: "POST", path: "/api/memories/ingest", body: body, header: map[string]string{"Content-Type": ct}})
			var acc mineruAccepted
			if res.status != http.StatusAccepted || json.Unmarshal(res.body, &acc) != nil || acc.Job.Kind != mineru.KindPDF || len(acc.Jobs) != 1 {
				t.Fatalf("upload: %d %s", res.status, res.body)
			}
			progress, end := h.readJobStream(t, "/api/jobs/"+acc.JobID+"/stream")
			if end != store.JobCompleted || len(progress) == 0 {
				t.Fatalf("stream: end %q after %d events", end, len(progress))
			}
			if last := progress[len(progress)-1]; last.Counts.New != 1 || last.Total != 52 {
				t.Fatalf("last progress: %+v", last)
			}
			if src, page := h.searchPage(t, "emperor penguin colony sea ice"); src != "manuals/field.pdf" || page != 37 {
				t.Fatalf("hit %s page %d", src, page)
			}
			if fake.Created() != 1 || fake.Uploads() != 1 {
				t.Fatalf("%d tasks, %d uploads", fake.Created(), fake.Uploads())
			}

			// The local path: pdftotext here, no MinerU.
			body, ct = multipartFiles(t, []uploadFile{{name: "local/field.pdf", data: fiftyPages()}}, nil)
			res = h.do(request{method: "POST", path: "/api/memories/ingest", body: body, header: map[string]string{"Content-Type": ct}})
			var local jobAccepted
			if res.status != http.StatusAccepted || json.Unmarshal(res.body, &local) != nil || local.Job.Kind != ingest.KindLocalFiles {
				t.Fatalf("local upload: %d %s", res.status, res.body)
			}
			if _, end := h.readJobStream(t, "/api/jobs/"+local.JobID+"/stream"); end != store.JobCompleted {
				t.Fatalf("local job ended %q", end)
			}
			sr := h.must(http.StatusOK, request{method: "GET", path: "/api/memories/search?top_k=5&q=" + url.QueryEscape("emperor penguin colony sea ice")})
			var found struct {
				Results []struct {
					Source struct {
						Source string `json:"source"`
						Page   int    `json:"page"`
					} `json:"source"`
				} `json:"results"`
			}
			if err := json.Unmarshal(sr.body, &found); err != nil {
				t.Fatal(err)
			}
			pages := map[string]int{}
			for _, f := range found.Results[:min(2, len(found.Results))] { // the two best: one per upload
				pages[f.Source.Source] = f.Source.Page
			}
			if pages["local/field.pdf"] != 37 || pages["manuals/field.pdf"] != 37 {
				t.Fatalf("hits by source: %v (%s)", pages, sr.body)
			}

			body, ct = multipartFiles(t, []uploadFile{{name: "notes.txt", data: []byte("plain text")}}, map[string]string{"mode": "mineru"})
			modelBody, modelCT := multipartFiles(t, nil, map[string]string{"mode": "mineru", "url": "https://a.example/x.pdf", "model_version": "huge"})
			for name, rq := range map[string]struct {
				rq   request
				code string
			}{
				"bad mode":  {request{method: "POST", path: "/api/memories/ingest?mode=cloud"}, "invalid_mode"},
				"nothing":   {request{method: "POST", path: "/api/memories/ingest?mode=mineru"}, "missing_file"},
				"bad url":   {request{method: "POST", path: "/api/memories/ingest?mode=mineru&url=file:///etc/passwd"}, "invalid_url"},
				"not a PDF": {request{method: "POST", path: "/api/memories/ingest", body: body, header: map[string]string{"Content-Type": ct}}, "unsupported_file"},
				"bad model": {request{method: "POST", path: "/api/memories/ingest", body: modelBody, header: map[string]string{"Content-Type": modelCT}}, "invalid_model_version"},
			} {
				res := h.do(rq.rq)
				var e struct {
					Error struct {
						Code string `json:"code"`
					} `json:"error"`
				}
				if res.status != http.StatusBadRequest || json.Unmarshal(res.body, &e) != nil || e.Error.Code != rq.code {
					t.Fatalf("%s: %d %s, want 400 %s", name, res.status, res.body, rq.code)
				}
			}
		})
	}
}

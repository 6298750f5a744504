package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/ingest"
	"github.com/openintern/openintern/internal/testpdf"
	"github.com/openintern/openintern/store"
)

type uploadFile struct {
	name string
	data []byte
	// disposition replaces the part's filename parameter (an RFC 2231 filename*=).
	disposition string
}

// multipartFiles is a form with the files in the field "files", their
// names (paths included) sent as given.
func multipartFiles(t *testing.T, files []uploadFile, fields map[string]string) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		hdr := textproto.MIMEHeader{}
		// Not %q: a name holding bytes Go would escape is sent raw.
		cd := `form-data; name="files"; filename="` + f.name + `"`
		if f.disposition != "" {
			cd = `form-data; name="files"; ` + f.disposition
		}
		hdr.Set("Content-Disposition", cd)
		hdr.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(hdr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(f.data)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String(), mw.FormDataContentType()
}

func (h *harness) startRunner(t *testing.T) {
	t.Helper()
	js := h.store.(store.JobStore)
	r, err := ingest.NewRunner(ingest.RunnerConfig{Store: js, Poll: 20 * time.Millisecond,
		Kinds: []ingest.Kind{ingest.LocalFiles{Store: js, Memories: h.mem}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
}

// TestIngestFilesJob: several files uploaded at once become a job (202);
// its stream shows progress up to completion and ends; the binary file is
// the job's one error while the others are ingested; a search finds page
// 2's text of the PDF with the page and path in its source; another
// tenant's job is not found, and an ended job cannot be cancelled.
func TestIngestFilesJob(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			h.startRunner(t)
			pdf := testpdf.Make([][]string{{"Annual report, page one."}, {"Narwhals gather near the ice shelf in spring."}})
			body, ct := multipartFiles(t, []uploadFile{
				{name: "docs/report.pdf", data: pdf},
				{name: "bin/blob.bin", data: []byte{0, 1, 2, 3, 0xfe}},
				{name: "site/page.html", data: []byte(`<html><head><title>Page</title></head><body><nav>Menu zebrafinch</nav><main><h1>Otters</h1><p>Otters hold hands while asleep.</p></main></body></html>`)},
				{name: "notes.md", data: []byte("# Notes\n\n## Birds\n\nPuffins nest in burrows.\n")},
			}, map[string]string{})
			res := h.do(request{method: "POST", path: "/api/memories/ingest", body: body, header: map[string]string{"Content-Type": ct}})
			if res.status != http.StatusAccepted {
				t.Fatalf("upload: %d %s", res.status, res.body)
			}
			var acc jobAccepted
			if err := json.Unmarshal(res.body, &acc); err != nil || acc.JobID == "" || acc.Job.Total != 4 || acc.Job.Kind != ingest.KindLocalFiles {
				t.Fatalf("accepted: %s (%v)", res.body, err)
			}

			progress, end := h.readJobStream(t, "/api/jobs/"+acc.JobID+"/stream")
			if len(progress) == 0 || end != store.JobCompleted {
				t.Fatalf("stream: %d progress events, end %q", len(progress), end)
			}
			last := progress[len(progress)-1]
			if last.Status != store.JobCompleted || last.Done != 4 || last.Counts != (store.JobCounts{Found: 4, New: 3, Failed: 1}) ||
				len(last.Errors) != 1 || last.Errors[0].Item != "bin/blob.bin" {
				t.Fatalf("last progress: %+v", last)
			}
			for i := 1; i < len(progress); i++ {
				if progress[i].Done < progress[i-1].Done {
					t.Fatalf("progress went back: %d after %d", progress[i].Done, progress[i-1].Done)
				}
			}

			got := h.must(http.StatusOK, request{method: "GET", path: "/api/jobs/" + acc.JobID})
			var j store.Job
			if err := json.Unmarshal(got.body, &j); err != nil || j.Status != store.JobCompleted {
				t.Fatalf("get job: %s", got.body)
			}
			list := h.must(http.StatusOK, request{method: "GET", path: "/api/jobs?limit=1"}).json(t)
			if list["total"].(float64) != 1 || len(list["jobs"].([]any)) != 1 {
				t.Fatalf("list: %v", list)
			}

			sr := h.must(http.StatusOK, request{method: "GET", path: "/api/memories/search?q=narwhals+ice+shelf"})
			var found struct {
				Results []struct {
					Source *struct {
						Source string `json:"source"`
						Page   int    `json:"page"`
						Title  string `json:"title"`
					} `json:"source"`
				} `json:"results"`
			}
			if err := json.Unmarshal(sr.body, &found); err != nil || len(found.Results) == 0 {
				t.Fatalf("search: %s", sr.body)
			}
			if s := found.Results[0].Source; s == nil || s.Source != "docs/report.pdf" || s.Page != 2 {
				t.Fatalf("source of the narwhal hit: %s", sr.body)
			}
			if sr := h.must(http.StatusOK, request{method: "GET", path: "/api/memories/search?q=zebrafinch"}); strings.Contains(string(sr.body), "zebrafinch") {
				t.Fatalf("the page's navigation was ingested: %s", sr.body)
			}

			other := map[string]string{"x-org-id": "o2", "x-user-id": "u2"}
			for _, rq := range []request{
				{method: "GET", path: "/api/jobs/" + acc.JobID, header: other},
				{method: "GET", path: "/api/jobs/" + acc.JobID + "/stream", header: other},
				{method: "POST", path: "/api/jobs/" + acc.JobID + "/cancel", header: other},
			} {
				if r := h.do(rq); r.status != http.StatusNotFound {
					t.Fatalf("%s %s as another tenant: %d %s", rq.method, rq.path, r.status, r.body)
				}
			}
			if r := h.do(request{method: "POST", path: "/api/jobs/" + acc.JobID + "/cancel"}); r.status != http.StatusConflict || r.errorCode(t) != "job_ended" {
				t.Fatalf("cancel an ended job: %d %s", r.status, r.body)
			}
		})
	}
}

// TestIngestFilesBadInput: a NUL or control character in a file's name, and
// a file over the per-file limit, are refused before a job is made.
func TestIngestFilesBadInput(t *testing.T) {
	h := newHarness(t, "sqlite")
	for _, tc := range []struct {
		name   string
		files  []uploadFile
		status int
		code   string
	}{
		{"nul in name", []uploadFile{{disposition: `filename*=UTF-8''a%00b.txt`, data: []byte("x")}}, http.StatusBadRequest, "invalid_filename"},
		{"control character in name", []uploadFile{{disposition: `filename*=UTF-8''a%01b.txt`, data: []byte("x")}}, http.StatusBadRequest, "invalid_filename"},
		{"invalid UTF-8 in name", []uploadFile{{disposition: `filename*=UTF-8''a%ffb.txt`, data: []byte("x")}}, http.StatusBadRequest, "invalid_filename"},
		{"file too large", []uploadFile{{name: "big.txt", data: bytes.Repeat([]byte("a"), MaxIngestFileBytes+1)}}, http.StatusRequestEntityTooLarge, "file_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, ct := multipartFiles(t, tc.files, nil)
			r := h.do(request{method: "POST", path: "/api/memories/ingest", body: body, header: map[string]string{"Content-Type": ct}})
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	list := h.must(http.StatusOK, request{method: "GET", path: "/api/jobs"}).json(t)
	if list["total"].(float64) != 0 {
		t.Fatalf("a refused upload made a job: %v", list)
	}
	if r := h.do(request{method: "GET", path: "/api/jobs/nope"}); r.status != http.StatusNotFound {
		t.Fatalf("unknown job: %d", r.status)
	}
}

// readJobStream reads a job's SSE stream to its end event (or 30 s).
func (h *harness) readJobStream(t *testing.T, path string) ([]store.Job, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", h.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-org-id", "o1")
	req.Header.Set("x-user-id", "u1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var (
		jobs  []store.Job
		event string
	)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "progress":
			var j store.Job
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &j); err != nil {
				t.Fatalf("progress event: %v: %s", err, line)
			}
			jobs = append(jobs, j)
		case strings.HasPrefix(line, "data: ") && event == "end":
			var e struct{ Status string }
			_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e)
			return jobs, e.Status
		}
	}
	t.Fatalf("the stream ended without an end event (%v) after %d progress events", sc.Err(), len(jobs))
	return nil, ""
}

package mineru_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/openintern/openintern/ingest"
	"github.com/openintern/openintern/ingest/mineru"
	"github.com/openintern/openintern/ingest/mineru/minerutest"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/internal/testpdf"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
	"github.com/openintern/openintern/store/sqlite"
	"github.com/openintern/openintern/tools"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var scope = store.Scope{OrgID: "org-m", UserID: "user-m"}

type env struct {
	jobs store.JobStore
	mem  *memory.Service
	srv  *minerutest.Server
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func bothStores(t *testing.T, fn func(t *testing.T, e env)) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "oi.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		fn(t, newEnv(t, st, st.Memory()))
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := postgres.Open(context.Background(), testenv.PostgresURL(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		fn(t, newEnv(t, st, st.Memory()))
	})
}

func newEnv(t *testing.T, js store.JobStore, ms memory.Store) env {
	t.Helper()
	svc, err := memory.New(memory.Config{Store: ms, Embedder: memory.NewHashEmbedder(64)})
	if err != nil {
		t.Fatal(err)
	}
	return env{jobs: js, mem: svc, srv: minerutest.New(t), logs: &syncBuffer{}}
}

func (e env) client(t *testing.T) *mineru.Client {
	t.Helper()
	c, err := mineru.New(mineru.Config{BaseURL: e.srv.BaseURL(), APIKey: e.srv.APIKey, PollInterval: 20 * time.Millisecond,
		MaxPollAttempts: 50, MaxRetries: 3, RetryBase: 10 * time.Millisecond, Timeout: 30 * time.Second,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e env) runner(t *testing.T, js store.JobStore) *ingest.Runner {
	t.Helper()
	r, err := ingest.NewRunner(ingest.RunnerConfig{Store: js, Poll: 20 * time.Millisecond, Lease: 3 * time.Second,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Kinds:  []ingest.Kind{mineru.Kind{Client: e.client(t), Store: e.jobs, Memories: e.mem}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

func (e env) create(t *testing.T, p mineru.Params, file []byte) store.Job {
	t.Helper()
	params, _ := json.Marshal(p)
	nj := store.NewJob{Scope: scope, ID: fmt.Sprintf("job_m%d", time.Now().UnixNano()), Kind: mineru.KindPDF, Params: params, Total: 1}
	if file != nil {
		nj.Inputs = []store.JobInput{{Seq: 0, Name: p.Name, Data: file}}
	}
	j, err := e.jobs.CreateJob(t.Context(), nj)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (e env) wait(t *testing.T, id, what string, cond func(store.Job) bool) store.Job {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		j, err := e.jobs.GetJob(context.Background(), scope, id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job never %s: %+v", what, j)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ended(j store.Job) bool { return store.JobEnded(j.Status) }

func search(t *testing.T, e env, q string) memory.Result {
	t.Helper()
	res, err := e.mem.Search(t.Context(), memory.SearchRequest{Scope: scope, Query: q, TopK: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) == 0 {
		t.Fatalf("search %q found nothing", q)
	}
	return res[0]
}

const penguin = "The emperor penguin colony relocates when the sea ice breaks early."

// manual is a 52-page PDF: a Part heading on page 1, a Chapter heading on
// every page, and a sentence only page 37 holds.
func manual() []byte {
	pages := make([][]string, 52)
	for i := range pages {
		pages[i] = []string{fmt.Sprintf("Chapter %d: Field work %d", i+1, i+1), "", "Routine notes about equipment and weather."}
	}
	pages[0] = append([]string{"Part 1: Antarctic survey", ""}, pages[0]...)
	pages[36] = append(pages[36], "", penguin)
	return testpdf.Make(pages)
}

// assertNoKey fails when the API key shows in the job or the logs.
func assertNoKey(t *testing.T, e env, j store.Job) {
	t.Helper()
	b, _ := json.Marshal(j)
	for what, s := range map[string]string{"the job": string(b), "the logs": e.logs.String()} {
		if strings.Contains(s, e.srv.APIKey) {
			t.Fatalf("the API key shows in %s: %s", what, s)
		}
		if strings.Contains(s, "Signature=") {
			t.Fatalf("the presigned upload URL shows in %s: %s", what, s)
		}
	}
	if l := e.srv.Leaked(); len(l) > 0 {
		t.Fatalf("the API key went to the storage URLs: %v", l)
	}
}

// TestMineruUploadFiftyPages: a 52-page PDF uploaded to MinerU (the
// upload path, a task that needs several polls, two 503s retried) is
// searchable by a sentence of page 37, and the hit names page 37 with its
// heading path; the progress showed pages while MinerU worked.
func TestMineruUploadFiftyPages(t *testing.T) {
	bothStores(t, func(t *testing.T, e env) {
		e.srv.SetPollsBeforeDone(4)
		e.srv.SetTransient(2)
		e.runner(t, e.jobs)
		j := e.create(t, mineru.Params{Name: "manuals/field.pdf"}, manual())
		sawPages := e.wait(t, j.ID, "showed page progress", func(j store.Job) bool { return j.Total == 52 || ended(j) })
		j = e.wait(t, j.ID, "ended", ended)
		if j.Status != store.JobCompleted || j.Counts != (store.JobCounts{Found: 1, New: 1}) || j.Done != 52 || j.Total != 52 {
			t.Fatalf("job: %+v (mid-way: %+v)", j, sawPages.JobProgress)
		}
		if e.srv.Created() != 1 || e.srv.Uploads() != 1 {
			t.Fatalf("created %d tasks and %d uploads, want 1 and 1", e.srv.Created(), e.srv.Uploads())
		}
		polls := 0
		for _, r := range e.srv.Requests() {
			if strings.HasPrefix(r, "GET /api/v4/extract-results/batch/") {
				polls++
			}
		}
		if polls < 5 {
			t.Fatalf("%d polls, want at least 5 (4 pending or running, then done)", polls)
		}
		hit := search(t, e, "emperor penguin colony sea ice")
		if hit.Source == nil || hit.Source.Page != 37 || hit.Source.Source != "manuals/field.pdf" ||
			hit.Source.Heading != "Part 1: Antarctic survey > Chapter 37: Field work 37" || hit.Source.Title != "Part 1: Antarctic survey" {
			t.Fatalf("hit %q source %+v", hit.Snippet, hit.Source)
		}
		if !strings.Contains(hit.Snippet, "emperor penguin") {
			t.Fatalf("hit snippet %q", hit.Snippet)
		}
		assertNoKey(t, e, j)
	})
}

// TestMineruURLTask: a task made from a URL is polled to its end and
// ingested under the URL; a task MinerU fails fails the job with MinerU's
// err_msg as the document's error.
func TestMineruURLTask(t *testing.T) {
	pdfs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		_, _ = w.Write(manual())
	}))
	defer pdfs.Close()
	bothStores(t, func(t *testing.T, e env) {
		e.srv.FailIf = "broken"
		e.runner(t, e.jobs)
		good := e.create(t, mineru.Params{URL: pdfs.URL + "/docs/manual.pdf"}, nil)
		bad := e.create(t, mineru.Params{URL: pdfs.URL + "/docs/broken.pdf"}, nil)
		good = e.wait(t, good.ID, "ended", ended)
		bad = e.wait(t, bad.ID, "ended", ended)
		if good.Status != store.JobCompleted || good.Counts.New != 1 {
			t.Fatalf("good job: %+v", good)
		}
		hit := search(t, e, "emperor penguin colony sea ice")
		if hit.Source == nil || hit.Source.Page != 37 || hit.Source.Source != pdfs.URL+"/docs/manual.pdf" {
			t.Fatalf("hit source %+v", hit.Source)
		}
		if bad.Status != store.JobFailed || !strings.Contains(bad.Error, "the PDF is damaged") || bad.Counts.Failed != 1 ||
			len(bad.Errors) != 1 || bad.Errors[0].Item != pdfs.URL+"/docs/broken.pdf" {
			t.Fatalf("failed task's job: %+v", bad)
		}
		assertNoKey(t, e, good)
		assertNoKey(t, e, bad)
	})
}

// crashingStore cannot release its jobs, as when the daemon is killed.
type crashingStore struct{ store.JobStore }

func (crashingStore) ReleaseJob(context.Context, store.Scope, string, string) error { return nil }

// TestMineruResume: a daemon killed while MinerU works leaves the task id
// (URL) or batch id (upload) in the checkpoint; the next runner polls that
// task to its end and does not create (or upload) it again.
func TestMineruResume(t *testing.T) {
	pdfs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(manual()) }))
	defer pdfs.Close()
	for _, mode := range []string{"upload", "url"} {
		t.Run(mode, func(t *testing.T) {
			bothStores(t, func(t *testing.T, e env) {
				e.srv.SetPollsBeforeDone(1 << 20)
				r1 := e.runner(t, crashingStore{e.jobs})
				var j store.Job
				if mode == "url" {
					j = e.create(t, mineru.Params{URL: pdfs.URL + "/field.pdf"}, nil)
				} else {
					j = e.create(t, mineru.Params{Name: "field.pdf"}, manual())
				}
				mid := e.wait(t, j.ID, "polled", func(j store.Job) bool { return strings.Contains(string(j.Checkpoint), `"polls":2`) })
				if err := r1.Stop(context.Background()); err != nil {
					t.Fatal(err)
				}
				var cp map[string]any
				if err := json.Unmarshal(mid.Checkpoint, &cp); err != nil {
					t.Fatal(err)
				}
				if (mode == "url" && cp["task_id"] == nil) || (mode == "upload" && (cp["batch_id"] == nil || cp["uploaded"] != true)) {
					t.Fatalf("checkpoint %s", mid.Checkpoint)
				}
				e.srv.SetPollsBeforeDone(3)
				e.runner(t, e.jobs)
				j = e.wait(t, j.ID, "ended", ended)
				if j.Status != store.JobCompleted || j.Attempts != 2 || j.Counts.New != 1 {
					t.Fatalf("resumed job: %+v", j)
				}
				wantUploads := map[string]int{"url": 0, "upload": 1}[mode]
				if e.srv.Created() != 1 || e.srv.Uploads() != wantUploads {
					t.Fatalf("created %d tasks and %d uploads after a crash, want 1 and %d", e.srv.Created(), e.srv.Uploads(), wantUploads)
				}
				if hit := search(t, e, "emperor penguin colony sea ice"); hit.Source == nil || hit.Source.Page != 37 {
					t.Fatalf("hit source %+v", hit.Source)
				}
			})
		})
	}
}

// TestMineruClientErrors: a wrong key is MinerU's API error, without the
// key in it; a stuck task is given up after maxPollAttempts.
func TestMineruClientErrors(t *testing.T) {
	srv := minerutest.New(t)
	c, err := mineru.New(mineru.Config{BaseURL: srv.BaseURL(), APIKey: "wrong-secret-key", MaxRetries: 1, RetryBase: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateURLTask(t.Context(), "https://example.com/a.pdf", mineru.TaskOptions{})
	var ae *mineru.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || strings.Contains(err.Error(), "wrong-secret-key") {
		t.Fatalf("err = %v", err)
	}
	if _, err := mineru.New(mineru.Config{BaseURL: "ftp://x"}); !errors.Is(err, mineru.ErrConfig) {
		t.Fatalf("bad config: %v", err)
	}
	srv.SetTransient(5)
	c, _ = mineru.New(mineru.Config{BaseURL: srv.BaseURL(), APIKey: srv.APIKey, MaxRetries: 2, RetryBase: time.Millisecond})
	_, err = c.CreateURLTask(t.Context(), "https://example.com/a.pdf", mineru.TaskOptions{})
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("err after retries = %v", err)
	}
}

// TestMineruTool: mineru_ingest_pdf queues a job for a workspace PDF and,
// asked to wait, answers its result; the same call run again (a resumed
// run) finds its job rather than queueing another; paths out of the
// workspace and non-PDFs are the model's errors.
func TestMineruTool(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "oi.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := newEnv(t, st, st.Memory())
	r := e.runner(t, e.jobs)
	ws := t.TempDir()
	outside := t.TempDir()
	writeFile(t, filepath.Join(ws, "papers", "field.pdf"), manual())
	writeFile(t, filepath.Join(ws, "notes.txt"), []byte("not a pdf"))
	writeFile(t, filepath.Join(outside, "secret.pdf"), manual())
	if err := os.Symlink(filepath.Join(outside, "secret.pdf"), filepath.Join(ws, "link.pdf")); err != nil {
		t.Fatal(err)
	}
	tool := mineru.Tool{Jobs: e.jobs, Workspace: ws, Wake: r.Wake, PollEvery: 20 * time.Millisecond}
	call := func(key, args string) tools.Result {
		t.Helper()
		res, err := tool.Run(t.Context(), tools.Call{Scope: scope, AgentID: "reader", Key: key, Args: json.RawMessage(args)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := call("run1/call1", `{"path": "papers/field.pdf", "wait_seconds": 50}`)
	var out struct {
		JobID  string `json:"job_id"`
		Status string `json:"status"`
		Pages  int    `json:"pages"`
		Source string `json:"source"`
	}
	if err := json.Unmarshal([]byte(res.Content), &out); err != nil || res.IsError || out.Status != store.JobCompleted || out.Pages != 52 || out.Source != "papers/field.pdf" {
		t.Fatalf("tool result %+v: %s", res, err)
	}
	if hit := search(t, e, "emperor penguin colony sea ice"); hit.Source == nil || hit.Source.Page != 37 || hit.Source.Source != "papers/field.pdf" {
		t.Fatalf("hit source %+v", hit.Source)
	}
	again := call("run1/call1", `{"path": "papers/field.pdf"}`)
	if !strings.Contains(again.Content, out.JobID) || e.srv.Created() != 1 {
		t.Fatalf("the same call again: %s, %d tasks created", again.Content, e.srv.Created())
	}
	for args, want := range map[string]string{
		`{"path": "../x.pdf"}`:                        "outside the workspace",
		`{"path": "/etc/passwd"}`:                     "absolute",
		`{"path": "link.pdf"}`:                        "outside the workspace",
		`{"path": "notes.txt"}`:                       "not a PDF",
		`{"path": "missing.pdf"}`:                     "does not exist",
		`{}`:                                          "exactly one of url or path",
		`{"url": "ftp://example.com/a.pdf"}`:          "not an http(s) URL",
		`{"url": "https://a/b.pdf", "path": "x.pdf"}`: "exactly one",
	} {
		if res := call("", args); !res.IsError || !strings.Contains(res.Content, want) {
			t.Fatalf("%s: %+v, want an error saying %q", args, res, want)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMineruStuckTask: a task still running after maxPollAttempts polls
// fails its job saying so, rather than polling forever.
func TestMineruStuckTask(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "oi.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := newEnv(t, st, st.Memory())
	e.srv.SetPollsBeforeDone(1 << 20)
	c, err := mineru.New(mineru.Config{BaseURL: e.srv.BaseURL(), APIKey: e.srv.APIKey, PollInterval: 10 * time.Millisecond, MaxPollAttempts: 4})
	if err != nil {
		t.Fatal(err)
	}
	r, err := ingest.NewRunner(ingest.RunnerConfig{Store: st, Poll: 20 * time.Millisecond,
		Kinds: []ingest.Kind{mineru.Kind{Client: c, Store: st, Memories: e.mem}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	j := e.create(t, mineru.Params{Name: "slow.pdf"}, manual())
	j = e.wait(t, j.ID, "ended", ended)
	if j.Status != store.JobFailed || !strings.Contains(j.Error, "after 4 polls (maxPollAttempts)") {
		t.Fatalf("stuck job: %+v", j)
	}
}

// TestResultDocument: a content list is cut at every heading and every new
// page, each section keeping its page and heading path; tables give their
// caption and cell text, images their caption; without a content list the
// Markdown is cut at its headings.
func TestResultDocument(t *testing.T) {
	res := mineru.Result{Blocks: []mineru.Block{
		{Type: "text", Text: "Survey", TextLevel: 1, PageIdx: 0},
		{Type: "text", Text: "Intro words.", PageIdx: 0},
		{Type: "text", Text: "Ice", TextLevel: 2, PageIdx: 0},
		{Type: "text", Text: "Ice on page one.", PageIdx: 0},
		{Type: "text", Text: "Ice on page two.", PageIdx: 1},
		{Type: "table", TableCaption: []string{"Table 1: depths"}, TableBody: "<table><tr><td>krill</td><td>40 m</td></tr></table>", PageIdx: 1},
		{Type: "image", ImageCaption: []string{"Figure 2: a floe"}, PageIdx: 1},
		{Type: "text", Text: "Birds", TextLevel: 2, PageIdx: 2},
		{Type: "text", Text: "", PageIdx: 2},
	}}
	doc, err := res.Document(t.Context(), "survey.pdf")
	if err != nil {
		t.Fatal(err)
	}
	type sec struct {
		page    int
		heading string
		text    string
	}
	want := []sec{
		{1, "Survey", "Survey\n\nIntro words."},
		{1, "Survey > Ice", "Ice\n\nIce on page one."},
		{2, "Survey > Ice", "Ice on page two.\n\nTable 1: depths\nkrill 40 m\n\nFigure 2: a floe"},
		{3, "Survey > Birds", "Birds"},
	}
	if doc.Title != "Survey" || len(doc.Sections) != len(want) {
		t.Fatalf("doc %+v", doc)
	}
	for i, w := range want {
		if s := doc.Sections[i]; s.Page != w.page || s.Heading != w.heading || s.Text != w.text {
			t.Fatalf("section %d = %+v, want %+v", i, s, w)
		}
	}
	md, err := mineru.Result{Markdown: "# Guide\n\nIntro.\n\n## Setup\n\nRun it.\n"}.Document(t.Context(), "g.pdf")
	if err != nil || md.Title != "Guide" || len(md.Sections) != 2 || md.Sections[1].Heading != "Guide > Setup" {
		t.Fatalf("markdown only: %+v %v", md, err)
	}
	if _, err := (mineru.Result{Markdown: "  "}).Document(t.Context(), "e.pdf"); err == nil {
		t.Fatal("an empty result made a document")
	}
}

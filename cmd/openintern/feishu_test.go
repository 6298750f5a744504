package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/ingest/feishu/feishutest"
	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFeishuEndToEnd: a daemon configured with a Feishu app (the local
// wire-format server) syncs a connector's wiki and drive folder over the API
// into archival memory that search cites, through a rate limit and an
// invalidated token, and neither the app secret nor a tenant token appears
// in any answer or log line (logged at debug).
func TestFeishuEndToEnd(t *testing.T) {
	const secret = "e2e-feishu-app-secret-42"
	srv := feishutest.New("cli_e2e", secret)
	defer srv.Close()
	srv.PutDoc("doxcnA", feishutest.Doc{Title: "Onboarding", Revision: 4, EditTime: 1700000000,
		Sections: []feishutest.Section{{Heading: "Laptops", Text: "Every engineer gets a laptop on day one, says the quartermaster."}}})
	srv.PutDoc("doxcnB", feishutest.Doc{Title: "Holidays", Revision: 2, EditTime: 1700000000,
		Sections: []feishutest.Section{{Heading: "Leave", Text: "Twenty days of leave a year."}}})
	srv.AddNode("sp1", feishutest.Node{Token: "wikcnA", ObjToken: "doxcnA", ObjType: "docx", Title: "Onboarding"})
	srv.AddFile("fld1", feishutest.File{Token: "doxcnB", Name: "Holidays", Type: "docx"})
	srv.RateLimit429(1)
	var once sync.Once
	srv.OnBlocks = func(string) { once.Do(srv.ExpireTokens) }

	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			cfg := newConfig(t, kind)
			cfg.Feishu = config.Feishu{Enabled: true, AppID: "cli_e2e", AppSecret: secret, BaseURL: srv.URL, TimeoutMs: 10000,
				MaxRetries: 3, PollIntervalMs: 0}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			logs := &lockedBuffer{}
			d := startDaemonMain(t, &daemon.Main{Config: cfg, Model: llm.NewOffline(),
				Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			c := d.client("org-e2e", "u1")
			var answers []string
			call := func(want int, method, path string, body any) string {
				t.Helper()
				status, raw := c.req(method, path, body)
				if status != want {
					t.Fatalf("%s %s: %d %s", method, path, status, raw)
				}
				answers = append(answers, string(raw))
				return string(raw)
			}
			call(http.StatusCreated, "POST", "/api/feishu/connectors",
				`{"connector_id":"kb","name":"Knowledge","sources":[{"type":"wiki","token":"sp1"},{"type":"drive","token":"fld1"}]}`)
			var job store.Job
			c.must(http.StatusAccepted, "POST", "/api/feishu/connectors/kb/sync", nil, &job)
			waitFor(t, 60*time.Second, "the sync to end", func() bool {
				c.must(http.StatusOK, "GET", "/api/jobs/"+job.ID, nil, &job)
				return store.JobEnded(job.Status)
			})
			if job.Status != store.JobCompleted || job.Counts.New != 2 || job.Counts.Found != 2 {
				t.Fatalf("sync: %+v", job)
			}
			call(http.StatusOK, "GET", "/api/jobs/"+job.ID, nil)
			call(http.StatusOK, "GET", "/api/feishu/connectors/kb/jobs", nil)
			call(http.StatusOK, "GET", "/api/feishu/connectors", nil)
			hits := call(http.StatusOK, "GET", "/api/memories/search?q="+url.QueryEscape("quartermaster laptop"), nil)
			if !strings.Contains(hits, srv.URL+"/wiki/wikcnA") || !strings.Contains(hits, `"heading":"Laptops"`) ||
				!strings.Contains(hits, `"title":"Onboarding"`) {
				t.Fatalf("search does not cite the wiki page: %s", hits)
			}
			if kind == "sqlite" {
				env := cliEnv(d, "org-e2e", "u1")
				if res := runCLI(t, env, "feishu", "connectors", "list"); res.code != 0 || !strings.Contains(res.stdout, "kb") ||
					!strings.Contains(res.stdout, "wiki:sp1,drive:fld1") {
					t.Fatalf("connectors list: %+v", res)
				}
				if res := runCLI(t, env, "feishu", "connectors", "jobs", "kb"); res.code != 0 || !strings.Contains(res.stdout, job.ID) {
					t.Fatalf("connectors jobs: %+v", res)
				}
				if res := runCLI(t, env, "feishu", "connectors", "add", "kb2", "--name", "Two", "--docx", "doxcnB", "--enabled=false"); res.code != 0 ||
					!strings.Contains(res.stdout, "enabled false") || !strings.Contains(res.stdout, "docx:doxcnB") {
					t.Fatalf("connectors add: %+v", res)
				}
				if res := runCLI(t, env, "feishu", "connectors", "sync", "kb2"); res.code != 0 || !strings.Contains(res.stdout, "openintern jobs watch job_") {
					t.Fatalf("connectors sync: %+v", res)
				}
				assertOneLineError(t, runCLI(t, env, "feishu", "connectors", "show", "nope"), "not found")
			}
			if !strings.Contains(logs.String(), "feishu") {
				t.Fatalf("nothing of the sync was logged (the secret check would be vacuous):\n%s", logs.String())
			}
			for _, s := range []string{secret, "t-fake-"} {
				if strings.Contains(logs.String(), s) {
					t.Fatalf("%q in the daemon's log", s)
				}
				for _, a := range answers {
					if strings.Contains(a, s) {
						t.Fatalf("%q in an answer: %s", s, a)
					}
				}
			}
		})
	}
}

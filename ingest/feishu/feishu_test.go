package feishu_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/openintern/openintern/ingest"
	"github.com/openintern/openintern/ingest/feishu"
	"github.com/openintern/openintern/ingest/feishu/feishutest"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
	"github.com/openintern/openintern/store/sqlite"
)

// TestMain fails the package when its tests leave a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	appID     = "cli_test_app"
	appSecret = "s3cr3t-app-secret-value"
)

var scope = store.Scope{OrgID: "org-1", UserID: "user-1", ProjectID: "proj-1"}

// syncStore is what a sync needs of a store: jobs and connectors.
type syncStore interface {
	store.JobStore
	store.FeishuStore
}

// env is a store (either dialect), a memory service over it, the fake
// Feishu and a log buffer every part logs into.
type env struct {
	st   syncStore
	mem  *memory.Service
	srv  *feishutest.Server
	logs *syncBuffer
	log  *slog.Logger
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

func bothStores(t *testing.T, fn func(t *testing.T, newEnv func() env)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, func() env {
			st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "oi.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return newEnv(t, st, st.Memory())
		})
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, func() env {
			st, err := postgres.Open(context.Background(), testenv.PostgresURL(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return newEnv(t, st, st.Memory())
		})
	})
}

func newEnv(t *testing.T, st syncStore, ms memory.Store) env {
	t.Helper()
	svc, err := memory.New(memory.Config{Store: ms, Embedder: memory.NewHashEmbedder(64)})
	if err != nil {
		t.Fatal(err)
	}
	srv := feishutest.New(appID, appSecret)
	t.Cleanup(srv.Close)
	logs := &syncBuffer{}
	return env{st: st, mem: svc, srv: srv, logs: logs, log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

func (e env) client(t *testing.T) *feishu.Client {
	t.Helper()
	c, err := feishu.NewClient(feishu.Config{BaseURL: e.srv.URL, AppID: appID, AppSecret: appSecret, Timeout: 10 * time.Second,
		MaxRetries: 4, RetryBase: 5 * time.Millisecond, MaxWait: 200 * time.Millisecond, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e env) runner(t *testing.T, c *feishu.Client) *ingest.Runner {
	t.Helper()
	r, err := ingest.NewRunner(ingest.RunnerConfig{Store: e.st, Lease: 30 * time.Second, Poll: 20 * time.Millisecond, Concurrency: 2,
		Logger: e.log, Kinds: []ingest.Kind{feishu.Sync{Store: e.st, Memories: e.mem, Client: c}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

// wiki fills the fake with 200 documents over 3 wiki levels (8 top nodes,
// 3 children each, 7 grandchildren each), two sections a document.
func (e env) wiki(t *testing.T) {
	t.Helper()
	n := 0
	doc := func(parent string) string {
		n++
		node, tok := fmt.Sprintf("wikcn%03d", n), fmt.Sprintf("doxcn%03d", n)
		e.srv.PutDoc(tok, feishutest.Doc{Title: "Doc " + tok, Revision: 1, EditTime: 1700000000,
			Sections: []feishutest.Section{{Heading: "Overview", Text: "overview of " + tok}, {Heading: "Details", Text: "details word" + tok}}})
		e.srv.AddNode("space1", feishutest.Node{Token: node, ObjToken: tok, ObjType: "docx", Title: "Doc " + tok, Parent: parent})
		return node
	}
	for range 8 {
		top := doc("")
		for range 3 {
			mid := doc(top)
			for range 7 {
				doc(mid)
			}
		}
	}
	// A sheet is not a document: listed, not synced.
	e.srv.AddNode("space1", feishutest.Node{Token: "wikcnsheet", ObjToken: "shtcn1", ObjType: "sheet", Title: "A sheet"})
	if n != 200 {
		t.Fatalf("made %d documents", n)
	}
}

func (e env) connector(t *testing.T) store.FeishuConnector {
	t.Helper()
	c, err := e.st.CreateFeishuConnector(t.Context(), store.FeishuConnector{Scope: scope, ID: "fc_1", Name: "team wiki", Enabled: true,
		Sources: []store.FeishuSource{{Type: store.FeishuSourceWiki, Token: "space1"}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e env) sync(t *testing.T, r *ingest.Runner, connectorID string) store.Job {
	t.Helper()
	j, err := e.st.QueueFeishuSync(t.Context(), scope, connectorID, feishu.NewSyncJob(scope, connectorID), 0)
	if err != nil {
		t.Fatal(err)
	}
	if r != nil {
		r.Wake()
	}
	return j
}

func (e env) waitJob(t *testing.T, id string, cond func(store.Job) bool) store.Job {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		j, err := e.st.GetJob(context.Background(), scope, id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job never reached the condition: %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ended(j store.Job) bool { return store.JobEnded(j.Status) }

// docMemories maps each synced document's source to its memories.
func (e env) docMemories(t *testing.T) map[string][]memory.Memory {
	t.Helper()
	out := map[string][]memory.Memory{}
	for off := 0; ; off += 500 {
		ms, total, err := e.mem.List(context.Background(), scope, memory.Filter{Types: []string{memory.TypeArchival}}, store.Page{Offset: off, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			out[m.Metadata[memory.MetaSource]] = append(out[m.Metadata[memory.MetaSource]], m)
		}
		if off+500 >= total {
			return out
		}
	}
}

func (e env) noSecrets(t *testing.T, extra ...string) {
	t.Helper()
	logs := e.logs.String()
	if logs == "" {
		t.Fatal("nothing was logged: the secret check would pass vacuously")
	}
	for _, s := range append([]string{appSecret, "t-fake-"}, extra...) {
		if strings.Contains(logs, s) {
			t.Fatalf("a secret (%q) is in the logs:\n%s", s, logs)
		}
	}
}

// TestFeishuSyncIncremental: 200 documents over 3 wiki levels, listed with
// paging, through 429s, frequency-limit codes and an expired token, sync
// each document once into two memories citing it; a second sync with 5
// documents changed and 2 deleted changes exactly those.
func TestFeishuSyncIncremental(t *testing.T) {
	bothStores(t, func(t *testing.T, newEnv func() env) {
		e := newEnv()
		e.wiki(t)
		conn := e.connector(t)
		e.srv.RateLimit429(2)
		e.srv.RateLimitCode(2)
		var reads atomic.Int64
		e.srv.OnBlocks = func(string) {
			if reads.Add(1) == 60 {
				e.srv.ExpireTokens()
			}
		}
		r := e.runner(t, e.client(t))
		j := e.waitJob(t, e.sync(t, r, conn.ID).ID, ended)
		want := store.JobCounts{Found: 200, New: 200}
		if j.Status != store.JobCompleted || j.Counts != want || j.Done != 200 || j.Total != 200 {
			t.Fatalf("first sync: %s %+v done %d/%d errors %v %s", j.Status, j.Counts, j.Done, j.Total, j.Errors, j.Error)
		}
		if got := e.srv.BlockReads.Load(); got != 200 {
			t.Fatalf("documents read %d times, want each once (200)", got)
		}
		if e.srv.RateLimited.Load() != 4 || e.srv.TokenGrants.Load() < 2 || e.srv.BadAuth.Load() == 0 {
			t.Fatalf("rate limits answered %d (want 4), tokens granted %d (want a refresh), bad auth %d",
				e.srv.RateLimited.Load(), e.srv.TokenGrants.Load(), e.srv.BadAuth.Load())
		}
		mems := e.docMemories(t)
		if len(mems) != 200 {
			t.Fatalf("%d documents in memory, want 200", len(mems))
		}
		src := e.srv.URL + "/wiki/wikcn005"
		m := mems[src]
		if len(m) != 2 {
			t.Fatalf("%s has %d memories, want 2", src, len(m))
		}
		for _, mm := range m {
			md := mm.Metadata
			if md[memory.MetaTitle] != "Doc doxcn005" || md[feishu.MetaRevision] != "1" || md[feishu.MetaConnector] != conn.ID ||
				(md[memory.MetaHeading] != "Overview" && md[memory.MetaHeading] != "Details") {
				t.Fatalf("memory metadata: %+v", md)
			}
		}
		hits, err := e.mem.Search(t.Context(), memory.SearchRequest{Scope: scope, Query: "worddoxcn123", TopK: 3, Mode: "fulltext"})
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) == 0 || hits[0].Source == nil || hits[0].Source.URL != e.srv.URL+"/wiki/wikcn123" ||
			hits[0].Source.Heading != "Details" || hits[0].Source.Title != "Doc doxcn123" {
			t.Fatalf("search hit: %+v", hits)
		}

		// Second sync: 5 changed, 2 deleted.
		changed := []string{"doxcn010", "doxcn050", "doxcn100", "doxcn150", "doxcn200"}
		for _, d := range changed {
			e.srv.EditDoc(d, "new text newword"+d)
		}
		e.srv.RemoveNode("space1", "wikcn199")
		e.srv.RemoveNode("space1", "wikcn198")
		reads0 := e.srv.BlockReads.Load()
		j2 := e.waitJob(t, e.sync(t, r, conn.ID).ID, ended)
		want = store.JobCounts{Found: 198, Changed: 5, Unchanged: 193, Deleted: 2}
		if j2.Status != store.JobCompleted || j2.Counts != want {
			t.Fatalf("second sync: %s %+v errors %v %s", j2.Status, j2.Counts, j2.Errors, j2.Error)
		}
		if got := e.srv.BlockReads.Load() - reads0; got != 5 {
			t.Fatalf("the second sync read %d documents, want the 5 changed", got)
		}
		after := e.docMemories(t)
		if len(after) != 198 {
			t.Fatalf("%d documents in memory after the second sync, want 198", len(after))
		}
		for _, gone := range []string{"wikcn198", "wikcn199"} {
			if len(after[e.srv.URL+"/wiki/"+gone]) != 0 {
				t.Fatalf("deleted %s still has memories", gone)
			}
		}
		for src, ms := range after {
			tok := "doxcn" + strings.TrimPrefix(src, e.srv.URL+"/wiki/wikcn")
			isChanged := false
			for _, c := range changed {
				isChanged = isChanged || c == tok
			}
			wantN, wantRev := 2, "1"
			if isChanged {
				wantN, wantRev = 3, "2"
			}
			if len(ms) != wantN || ms[0].Metadata[feishu.MetaRevision] != wantRev {
				t.Fatalf("%s: %d memories at revision %s, want %d at %s", src, len(ms), ms[0].Metadata[feishu.MetaRevision], wantN, wantRev)
			}
			// Unchanged documents keep the very memories the first sync wrote.
			if !isChanged && ms[0].ID != mems[src][0].ID && ms[0].ID != mems[src][1].ID {
				t.Fatalf("%s: memory %s was rewritten", src, ms[0].ID)
			}
		}
		e.noSecrets(t)
	})
}

// TestFeishuSyncResumes: a sync stopped half-way (the runner shut down)
// resumes on a new runner and ends as an uninterrupted sync does, without
// reading again the documents it finished.
func TestFeishuSyncResumes(t *testing.T) {
	bothStores(t, func(t *testing.T, newEnv func() env) {
		e := newEnv()
		e.wiki(t)
		conn := e.connector(t)
		half := make(chan struct{})
		var reads atomic.Int64
		e.srv.OnBlocks = func(string) {
			if reads.Add(1) == 100 {
				close(half)
			}
		}
		c := e.client(t)
		r1 := e.runner(t, c)
		j := e.sync(t, r1, conn.ID)
		select {
		case <-half:
		case <-time.After(5 * time.Minute):
			t.Fatal("the sync never got half-way")
		}
		if err := r1.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		mid, err := e.st.GetJob(t.Context(), scope, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if mid.Status != store.JobRunning || mid.Done == 0 || mid.Done >= 200 {
			t.Fatalf("after the stop: %s, done %d", mid.Status, mid.Done)
		}
		e.runner(t, c)
		fin := e.waitJob(t, j.ID, ended)
		want := store.JobCounts{Found: 200, New: 200}
		if fin.Status != store.JobCompleted || fin.Counts != want || fin.Attempts != 2 {
			t.Fatalf("resumed sync: %s %+v attempts %d errors %v", fin.Status, fin.Counts, fin.Attempts, fin.Errors)
		}
		// At most the documents in flight at the stop are read twice.
		if got := e.srv.BlockReads.Load(); got < 200 || got > 203 {
			t.Fatalf("documents read %d times in all, want 200 (+ the few in flight at the stop)", got)
		}
		mems := e.docMemories(t)
		total := 0
		for _, ms := range mems {
			total += len(ms)
		}
		if len(mems) != 200 || total != 400 {
			t.Fatalf("%d documents, %d memories; want 200 and 400", len(mems), total)
		}
		e.noSecrets(t)
	})
}

// TestFeishuSyncCancel: a cancel request ends a running sync cancelled,
// part-way, and the next sync finishes the rest.
func TestFeishuSyncCancel(t *testing.T) {
	bothStores(t, func(t *testing.T, newEnv func() env) {
		e := newEnv()
		e.wiki(t)
		conn := e.connector(t)
		var (
			reads atomic.Int64
			jobID atomic.Value
		)
		e.srv.OnBlocks = func(string) {
			if reads.Add(1) == 30 {
				if _, err := e.st.CancelJob(context.Background(), scope, jobID.Load().(string)); err != nil {
					t.Errorf("cancel: %v", err)
				}
			}
		}
		j, err := e.st.QueueFeishuSync(t.Context(), scope, conn.ID, feishu.NewSyncJob(scope, conn.ID), 0)
		if err != nil {
			t.Fatal(err)
		}
		jobID.Store(j.ID)
		r := e.runner(t, e.client(t))
		got := e.waitJob(t, j.ID, ended)
		if got.Status != store.JobCancelled || got.Counts.New >= 200 || got.Counts.New < 29 {
			t.Fatalf("cancelled sync: %s %+v", got.Status, got.Counts)
		}
		next := e.waitJob(t, e.sync(t, r, conn.ID).ID, ended)
		if next.Status != store.JobCompleted || next.Counts.New+next.Counts.Unchanged != 200 || next.Counts.New != 200-got.Counts.New {
			t.Fatalf("the sync after the cancel: %s %+v (the cancelled one did %+v)", next.Status, next.Counts, got.Counts)
		}
	})
}

// TestFeishuSyncDriveAndDocx: drive folders are walked recursively (paged),
// a docx source is synced by its revision, a document listed twice is
// synced once, a document Feishu refuses is counted failed while the rest
// go on, and a source that cannot be listed deletes nothing.
func TestFeishuSyncDriveAndDocx(t *testing.T) {
	bothStores(t, func(t *testing.T, newEnv func() env) {
		e := newEnv()
		for i := range 10 {
			tok := fmt.Sprintf("doxdr%02d", i)
			e.srv.PutDoc(tok, feishutest.Doc{Title: "Drive " + tok, Revision: 3, EditTime: 1700000100,
				Sections: []feishutest.Section{{Heading: "Body", Text: "drive text " + tok}}})
			folder := "fldroot"
			if i >= 5 {
				folder = "fldsub"
			}
			e.srv.AddFile(folder, feishutest.File{Token: tok, Name: "Drive " + tok, Type: "docx"})
		}
		e.srv.AddFile("fldroot", feishutest.File{Token: "fldsub", Name: "sub", Type: "folder"})
		e.srv.AddFile("fldroot", feishutest.File{Token: "boxcn1", Name: "a.pdf", Type: "file"})
		e.srv.FailDoc("doxdr07", true)
		conn, err := e.st.CreateFeishuConnector(t.Context(), store.FeishuConnector{Scope: scope, ID: "fc_drive", Name: "drive", Enabled: true,
			Sources: []store.FeishuSource{{Type: "drive", Token: "fldroot"}, {Type: "docx", Token: "doxdr01"}}})
		if err != nil {
			t.Fatal(err)
		}
		r := e.runner(t, e.client(t))
		j := e.waitJob(t, e.sync(t, r, conn.ID).ID, ended)
		if j.Status != store.JobCompleted || j.Counts != (store.JobCounts{Found: 10, New: 9, Failed: 1}) || len(j.Errors) != 1 ||
			!strings.Contains(j.Errors[0].Item, "doxdr07") {
			t.Fatalf("drive sync: %s %+v %v", j.Status, j.Counts, j.Errors)
		}
		if n := len(e.docMemories(t)); n != 9 {
			t.Fatalf("%d documents in memory, want 9", n)
		}

		// The sub-folder cannot be listed now: nothing is deleted; the
		// refused document, readable again, comes in.
		e.srv.FailDoc("doxdr07", false)
		e.srv.AddFile("fldroot", feishutest.File{Token: "fldgone", Name: "gone", Type: "folder"})
		j2 := e.waitJob(t, e.sync(t, r, conn.ID).ID, ended)
		if j2.Status != store.JobCompleted || j2.Counts.New != 1 || j2.Counts.Deleted != 0 || j2.Counts.Failed != 1 {
			t.Fatalf("sync with a source that failed: %s %+v %v", j2.Status, j2.Counts, j2.Errors)
		}
		if n := len(e.docMemories(t)); n != 10 {
			t.Fatalf("%d documents in memory, want 10", n)
		}
	})
}

// TestFeishuSyncDocxGone: a docx source Feishu no longer has is the sync's
// error and its memories are deleted; the other source's stay.
func TestFeishuSyncDocxGone(t *testing.T) {
	bothStores(t, func(t *testing.T, newEnv func() env) {
		e := newEnv()
		for _, tok := range []string{"doxA", "doxB"} {
			e.srv.PutDoc(tok, feishutest.Doc{Title: tok, Revision: 1, Sections: []feishutest.Section{{Heading: "H", Text: "text of " + tok}}})
		}
		conn, err := e.st.CreateFeishuConnector(t.Context(), store.FeishuConnector{Scope: scope, ID: "fc_docs", Name: "docs", Enabled: true,
			Sources: []store.FeishuSource{{Type: "docx", Token: "doxA"}, {Type: "docx", Token: "doxB"}}})
		if err != nil {
			t.Fatal(err)
		}
		r := e.runner(t, e.client(t))
		if j := e.waitJob(t, e.sync(t, r, conn.ID).ID, ended); j.Counts != (store.JobCounts{Found: 2, New: 2}) {
			t.Fatalf("first sync: %+v %v", j.Counts, j.Errors)
		}
		e.srv.DeleteDoc("doxB")
		j := e.waitJob(t, e.sync(t, r, conn.ID).ID, ended)
		if j.Status != store.JobCompleted || j.Counts != (store.JobCounts{Found: 1, Unchanged: 1, Deleted: 1, Failed: 1}) {
			t.Fatalf("sync after a docx source went: %s %+v %v", j.Status, j.Counts, j.Errors)
		}
		mems := e.docMemories(t)
		if len(mems) != 1 || len(mems[e.srv.URL+"/docx/doxA"]) != 1 {
			t.Fatalf("memories left: %v", mems)
		}
	})
}

// TestFeishuClient covers the client alone: one token for many calls, a
// token taken again when the last one is about to expire, retries ending
// with an error naming the code, a wrong secret refused without the secret
// in the error.
func TestFeishuClient(t *testing.T) {
	srv := feishutest.New(appID, appSecret)
	defer srv.Close()
	srv.PutDoc("doxcnA", feishutest.Doc{Title: "A", Revision: 7})
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	newClient := func(secret string, retries int) *feishu.Client {
		c, err := feishu.NewClient(feishu.Config{BaseURL: srv.URL, AppID: appID, AppSecret: secret, MaxRetries: retries,
			RetryBase: time.Millisecond, MaxWait: 100 * time.Millisecond, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := t.Context()
	c := newClient(appSecret, 3)
	for range 3 {
		m, err := c.Document(ctx, "doxcnA")
		if err != nil || m.RevisionID != 7 || m.Title != "A" {
			t.Fatalf("document: %+v %v", m, err)
		}
	}
	if n := srv.TokenGrants.Load(); n != 1 {
		t.Fatalf("%d tokens granted for 3 calls, want 1", n)
	}
	// A token granted for 0 s is due for renewal at once: each call takes one.
	srv.TokenExpire = 0
	c2 := newClient(appSecret, 3)
	for range 2 {
		if _, err := c2.Document(ctx, "doxcnA"); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.TokenGrants.Load(); n != 3 {
		t.Fatalf("%d tokens granted in all, want 3 (each call of the expiring client took one)", n)
	}
	srv.TokenExpire = 7200

	srv.RateLimit429(10)
	_, err := newClient(appSecret, 2).Document(ctx, "doxcnA")
	var apiErr *feishu.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != feishu.CodeRateLimited || srv.RateLimited.Load() != 3 {
		t.Fatalf("after 3 rate limits with 2 retries: %v (answered %d)", err, srv.RateLimited.Load())
	}
	srv.RateLimit429(0)

	_, err = c.Document(ctx, "doxcnMissing")
	if !errors.Is(err, feishu.ErrNotFound) {
		t.Fatalf("a missing document: %v", err)
	}
	_, err = newClient("wrong-"+appSecret, 3).Document(ctx, "doxcnA")
	if err == nil || strings.Contains(err.Error(), appSecret) || !strings.Contains(err.Error(), "10014") {
		t.Fatalf("a wrong secret: %v", err)
	}
	if _, err := feishu.NewClient(feishu.Config{BaseURL: "ftp://x", AppID: "a", AppSecret: "b"}); err == nil {
		t.Fatal("an ftp base URL was accepted")
	}
	if strings.Contains(logs.String(), appSecret) || strings.Contains(logs.String(), "t-fake-") || logs.String() == "" {
		t.Fatalf("logs (must be there, without secrets):\n%s", logs.String())
	}
}

// TestFeishuPoller: polls queue one sync per due connector, none while one
// is active or within the interval, and none for a disabled connector.
func TestFeishuPoller(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "oi.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	for i, enabled := range []bool{true, true, false} {
		if _, err := st.CreateFeishuConnector(ctx, store.FeishuConnector{Scope: scope, ID: fmt.Sprintf("fc_%d", i), Name: "c",
			Enabled: enabled}); err != nil {
			t.Fatal(err)
		}
	}
	woken := 0
	p := feishu.Poller{Store: st, Interval: time.Hour, Wake: func() { woken++ }}
	n, err := p.Once(ctx, time.Now())
	if err != nil || n != 2 || woken != 1 {
		t.Fatalf("first poll: %d queued, woken %d, %v", n, woken, err)
	}
	n, err = p.Once(ctx, time.Now().Add(2*time.Hour)) // due again, but the first jobs are still queued
	if err != nil || n != 0 {
		t.Fatalf("poll with syncs queued: %d queued, %v", n, err)
	}
	jobs, total, err := st.ListFeishuConnectorJobs(ctx, scope, "fc_0", store.Page{})
	if err != nil || total != 1 || jobs[0].Kind != store.KindFeishuSync || !strings.Contains(string(jobs[0].Params), `"fc_0"`) {
		t.Fatalf("fc_0's jobs: %+v %v", jobs, err)
	}
}

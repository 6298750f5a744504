package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/openintern/openintern/ingest"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/internal/testpdf"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
	"github.com/openintern/openintern/store/sqlite"
)

// TestMain fails the package when its tests leave a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var scope = store.Scope{OrgID: "org-1", UserID: "user-1"}

// env is a store (both kinds) with a memory service over it.
type env struct {
	jobs store.JobStore
	mem  *memory.Service
	ms   memory.Store
}

func bothStores(t *testing.T, fn func(t *testing.T, newEnv func(emb memory.Embedder) env)) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "oi.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		fn(t, func(emb memory.Embedder) env { return newEnv(t, st, st.Memory(), emb) })
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := postgres.Open(context.Background(), testenv.PostgresURL(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		fn(t, func(emb memory.Embedder) env { return newEnv(t, st, st.Memory(), emb) })
	})
}

func newEnv(t *testing.T, js store.JobStore, ms memory.Store, emb memory.Embedder) env {
	t.Helper()
	if emb == nil {
		emb = memory.NewHashEmbedder(64)
	}
	svc, err := memory.New(memory.Config{Store: ms, Embedder: emb})
	if err != nil {
		t.Fatal(err)
	}
	return env{jobs: js, mem: svc, ms: ms}
}

// crashingStore is a job store whose runner cannot release its jobs, as
// when its daemon is killed: its jobs come free only when their leases lapse.
type crashingStore struct{ store.JobStore }

func (crashingStore) ReleaseJob(context.Context, store.Scope, string, string) error { return nil }

func (e env) runner(t *testing.T, lease time.Duration) *ingest.Runner {
	t.Helper()
	return e.runnerOn(t, e.jobs, lease)
}

func (e env) runnerOn(t *testing.T, js store.JobStore, lease time.Duration) *ingest.Runner {
	t.Helper()
	r, err := ingest.NewRunner(ingest.RunnerConfig{Store: js, Lease: lease, Poll: 20 * time.Millisecond, Concurrency: 2,
		Kinds: []ingest.Kind{ingest.LocalFiles{Store: e.jobs, Memories: e.mem}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

func (e env) create(t *testing.T, files map[string][]byte, order ...string) store.Job {
	t.Helper()
	inputs := make([]store.JobInput, len(order))
	for i, name := range order {
		inputs[i] = store.JobInput{Seq: i, Name: name, Data: files[name]}
	}
	j, err := e.jobs.CreateJob(t.Context(), store.NewJob{Scope: scope, ID: fmt.Sprintf("job-%d", time.Now().UnixNano()),
		Kind: ingest.KindLocalFiles, Params: json.RawMessage(`{}`), Total: len(inputs), Inputs: inputs})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// waitJob polls the job until cond holds (or 20 s pass).
func (e env) waitJob(t *testing.T, id string, what string, cond func(store.Job) bool) store.Job {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
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

func (e env) memories(t *testing.T) []memory.Memory {
	t.Helper()
	ms, _, err := e.mem.List(context.Background(), scope, memory.Filter{}, store.Page{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

const navHTML = `<!doctype html><html><head><title>Tide tables</title><style>.x{color:red}</style>
<script>var secretScript = "javascriptonly";</script></head>
<body><nav><a href="/">Home</a> <a href="/login">Sign in navigationlink</a></nav>
<header>Site banner bannerword</header>
<main><h1>Tides</h1><p>The spring tide peaks twice a month.</p>
<h2>Neap</h2><p>A neap tide is the weakest tide.</p></main>
<footer>Copyright footerword</footer></body></html>`

const sampleMD = "# Guide\n\nIntro text.\n\n## Install\n\nRun the installer.\n\n```sh\n# not a heading\n```\n\n### Linux\n\nUse the tarball on Linux.\n"

func twoPagePDF() []byte {
	return testpdf.Make([][]string{
		{"Quarterly report.", "Revenue grew in every region."},
		{"The walrus migration starts in the second quarter.", "It ends in autumn."},
	})
}

// TestLocalFilesJob: a batch of a PDF, an HTML page, Markdown and a binary
// file runs to completion on both stores; the binary file is a per-file
// error that does not stop the batch; search finds page 2's text with page 2
// in the citation, the HTML's main text without its navigation, and the
// Markdown's section with its heading path.
func TestLocalFilesJob(t *testing.T) {
	bothStores(t, func(t *testing.T, newEnv func(memory.Embedder) env) {
		e := newEnv(nil)
		e.runner(t, time.Minute)
		files := map[string][]byte{
			"docs/report.pdf": twoPagePDF(),
			"bin/blob.dat":    {0x7f, 'E', 'L', 'F', 0, 0, 1, 2},
			"web/tides.html":  []byte(navHTML),
			"notes/guide.md":  []byte(sampleMD),
		}
		j := e.create(t, files, "docs/report.pdf", "bin/blob.dat", "web/tides.html", "notes/guide.md")
		j = e.waitJob(t, j.ID, "completed", func(j store.Job) bool { return store.JobEnded(j.Status) })
		if j.Status != store.JobCompleted || j.Done != 4 || j.Total != 4 {
			t.Fatalf("job: %+v", j)
		}
		want := store.JobCounts{Found: 4, New: 3, Failed: 1}
		if j.Counts != want {
			t.Fatalf("counts = %+v, want %+v", j.Counts, want)
		}
		if len(j.Errors) != 1 || j.Errors[0].Item != "bin/blob.dat" {
			t.Fatalf("errors = %+v", j.Errors)
		}
		if _, err := e.jobs.JobInput(t.Context(), scope, j.ID, 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("inputs kept after the job ended: %v", err)
		}

		hit := search(t, e, "walrus migration")
		if hit.Source == nil || hit.Source.Source != "docs/report.pdf" || hit.Source.Page != 2 {
			t.Fatalf("walrus hit source = %+v", hit.Source)
		}
		hit = search(t, e, "neap tide weakest")
		if hit.Source == nil || hit.Source.Title != "Tide tables" || hit.Source.Heading != "Tides > Neap" {
			t.Fatalf("neap hit source = %+v", hit.Source)
		}
		hit = search(t, e, "tarball Linux")
		if hit.Source == nil || hit.Source.Heading != "Guide > Install > Linux" || hit.Source.Title != "Guide" {
			t.Fatalf("tarball hit source = %+v", hit.Source)
		}
		for _, m := range e.memories(t) {
			for _, w := range []string{"navigationlink", "bannerword", "footerword", "javascriptonly", "color:red"} {
				if strings.Contains(m.Text, w) {
					t.Fatalf("memory %s holds %q from outside the main content: %q", m.ID, w, m.Text)
				}
			}
		}
	})
}

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

// gateEmbedder embeds like the hash embedder, counts the texts it saw, and
// blocks a text holding "BLOCKME" until its context ends while blocked is set.
type gateEmbedder struct {
	*memory.HashEmbedder
	mu      sync.Mutex
	seen    map[string]int
	blocked bool
	entered chan struct{}
}

func newGate() *gateEmbedder {
	return &gateEmbedder{HashEmbedder: memory.NewHashEmbedder(64), seen: map[string]int{}, blocked: true, entered: make(chan struct{}, 16)}
}

func (g *gateEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	g.mu.Lock()
	block := false
	for _, s := range texts {
		g.seen[s]++
		block = block || (g.blocked && strings.Contains(s, "BLOCKME"))
	}
	g.mu.Unlock()
	if block {
		g.entered <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return g.HashEmbedder.Embed(ctx, texts)
}

func (g *gateEmbedder) count(sub string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for s, k := range g.seen {
		if strings.Contains(s, sub) {
			n += k
		}
	}
	return n
}

// TestCrashResume: a runner stopped in the middle of a job (its second
// file stuck in the embedder) leaves the job running with its checkpoint; a
// new runner resumes it — at once after a shutdown, once the lease lapsed
// after a crash — and finishes without embedding the first file again or
// duplicating its memories.
func TestCrashResume(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "shutdown", true: "crash"}[crash], func(t *testing.T) { testCrashResume(t, crash) })
	}
}

func testCrashResume(t *testing.T, crash bool) {
	bothStores(t, func(t *testing.T, newEnv func(memory.Embedder) env) {
		gate := newGate()
		e := newEnv(gate)
		var r1 *ingest.Runner
		if crash {
			r1 = e.runnerOn(t, crashingStore{e.jobs}, 3*time.Second)
		} else {
			r1 = e.runner(t, time.Minute)
		}
		files := map[string][]byte{
			"a.txt": []byte("Alpha file about otters."),
			"b.txt": []byte("Beta file BLOCKME about herons."),
			"c.txt": []byte("Gamma file about badgers."),
		}
		j := e.create(t, files, "a.txt", "b.txt", "c.txt")
		select {
		case <-gate.entered:
		case <-time.After(20 * time.Second):
			t.Fatal("the job never reached the second file")
		}
		if err := r1.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		mid, err := e.jobs.GetJob(t.Context(), scope, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if mid.Status != store.JobRunning || mid.Done != 1 || string(mid.Checkpoint) != `{"next":1}` {
			t.Fatalf("after the stop: %+v", mid)
		}
		if n := len(e.memories(t)); n != 1 {
			t.Fatalf("%d memories after the stop, want 1", n)
		}

		gate.mu.Lock()
		gate.blocked = false
		gate.mu.Unlock()
		e2 := newEnv(gate)
		if crash {
			if _, err := e2.jobs.ClaimJob(t.Context(), "early", time.Minute); !errors.Is(err, store.ErrNoWork) {
				t.Fatalf("a crashed runner's job was claimable before its lease lapsed: %v", err)
			}
		}
		e2.runner(t, time.Minute)
		j = e2.waitJob(t, j.ID, "completed", func(j store.Job) bool { return store.JobEnded(j.Status) })
		if j.Status != store.JobCompleted || j.Attempts != 2 || j.Counts != (store.JobCounts{Found: 3, New: 3}) {
			t.Fatalf("resumed job: %+v", j)
		}
		if n := gate.count("otters"); n != 1 {
			t.Fatalf("the first file was embedded %d times, want once", n)
		}
		ms := e.memories(t)
		if len(ms) != 3 {
			t.Fatalf("%d memories, want 3 (no duplicates)", len(ms))
		}
		chunks := 0
		for _, m := range ms {
			chunks += m.Chunks
		}
		if chunks != 3 {
			t.Fatalf("%d chunks, want 3", chunks)
		}
	})
}

// TestCancelRunningJob: a cancel request stops a job stuck in an item at
// once (not after the item), and it ends cancelled with what it had done.
func TestCancelRunningJob(t *testing.T) {
	bothStores(t, func(t *testing.T, newEnv func(memory.Embedder) env) {
		gate := newGate()
		e := newEnv(gate)
		e.runner(t, 300*time.Millisecond)
		j := e.create(t, map[string][]byte{"a.txt": []byte("First file."), "b.txt": []byte("BLOCKME second.")}, "a.txt", "b.txt")
		select {
		case <-gate.entered:
		case <-time.After(20 * time.Second):
			t.Fatal("the job never reached the second file")
		}
		if _, err := e.jobs.CancelJob(t.Context(), scope, j.ID); err != nil {
			t.Fatal(err)
		}
		j = e.waitJob(t, j.ID, "cancelled", func(j store.Job) bool { return store.JobEnded(j.Status) })
		if j.Status != store.JobCancelled || j.Done != 1 || j.Counts.New != 1 {
			t.Fatalf("cancelled job: %+v", j)
		}
		if _, err := e.jobs.CancelJob(t.Context(), scope, j.ID); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("cancel of an ended job: %v", err)
		}
	})
}

// TestPutDocumentReplaces: the same document put twice is unchanged (no new
// memories); changed content replaces the old memories; a deleted document
// leaves none.
func TestPutDocumentReplaces(t *testing.T) {
	bothStores(t, func(t *testing.T, newEnv func(memory.Embedder) env) {
		e := newEnv(nil)
		ctx, tg := t.Context(), ingest.Target{Scope: scope}
		put := func(text string) ingest.Outcome {
			doc := ingest.Document{Title: "t", Format: ingest.FormatText, Sections: []ingest.Section{{Text: text}, {Text: text + " again"}}}
			out, err := ingest.PutDocument(ctx, e.mem, tg, "job-x", "src/a.txt", ingest.ContentHash([]byte(text)), doc)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		if out := put("version one"); out != ingest.New {
			t.Fatalf("first put: %v", out)
		}
		if out := put("version one"); out != ingest.New { // same job: its own write
			t.Fatalf("same job again: %v", out)
		}
		if n := len(e.memories(t)); n != 2 {
			t.Fatalf("%d memories, want 2", n)
		}
		if out := put("version two"); out != ingest.Changed {
			t.Fatalf("changed put: %v", out)
		}
		ms := e.memories(t)
		if len(ms) != 2 || !strings.Contains(ms[0].Text, "two") || !strings.Contains(ms[1].Text, "two") {
			t.Fatalf("after the change: %+v", ms)
		}
		doc := ingest.Document{Title: "t", Sections: []ingest.Section{{Text: "version two"}, {Text: "version two again"}}}
		out, err := ingest.PutDocument(ctx, e.mem, tg, "job-y", "src/a.txt", ingest.ContentHash([]byte("version two")), doc)
		if err != nil || out != ingest.Unchanged {
			t.Fatalf("another job, same content: %v %v", out, err)
		}
		gone, err := ingest.DeleteDocument(ctx, e.mem, tg, "src/a.txt")
		if err != nil || !gone || len(e.memories(t)) != 0 {
			t.Fatalf("delete: %v %v, %d left", gone, err, len(e.memories(t)))
		}
	})
}

func ended(j store.Job) bool { return store.JobEnded(j.Status) }

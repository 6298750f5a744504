package storetest

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

var feishuCases = []testCase{
	{"Feishu/ConnectorCRUD", testFeishuConnectorCRUD},
	{"Feishu/QueueSyncOncePerConnector", testFeishuQueueSync},
	{"Feishu/ConcurrentQueuesMakeOneJob", testFeishuConcurrentQueue},
	{"Feishu/DocsAndTombstones", testFeishuDocs},
}

func feishuStore(t *testing.T, s store.Store) store.FeishuStore {
	t.Helper()
	fs, ok := s.(clockedStore).Store.(store.FeishuStore)
	if !ok {
		t.Fatalf("%T does not keep feishu connectors", s.(clockedStore).Store)
	}
	return fs
}

func createConnector(t *testing.T, fs store.FeishuStore, scope store.Scope, srcs ...store.FeishuSource) store.FeishuConnector {
	t.Helper()
	c, err := fs.CreateFeishuConnector(t.Context(), store.FeishuConnector{Scope: scope, ID: newID("fc"), Name: "wiki",
		Enabled: true, Sources: srcs})
	must(t, err)
	return c
}

func syncJob(scope store.Scope) store.NewJob {
	return store.NewJob{Scope: scope, ID: newID("job"), Kind: store.KindFeishuSync, Params: json.RawMessage(`{"connector_id":"x"}`)}
}

// testFeishuConnectorCRUD: a connector is stored with its sources, read back
// equal, listed oldest first, patched field by field, refused with bad
// sources or a duplicate id, and not seen from another scope.
func testFeishuConnectorCRUD(t *testing.T, s store.Store) {
	fs, ctx := feishuStore(t, s), t.Context()
	srcs := []store.FeishuSource{{Type: "wiki", Token: "space1", RootNode: "node_a"}, {Type: "docx", Token: "doxcnAbc"},
		{Type: "drive", Token: "fldcn1"}}
	c1 := createConnector(t, fs, scopeA, srcs...)
	wantEqual(t, "sources", c1.Sources, srcs)
	if !c1.Enabled || c1.LastJobID != "" || c1.LastQueuedAt != nil || c1.Scope != scopeA {
		t.Fatalf("created: %+v", c1)
	}
	checkTime(t, "created_at", c1.CreatedAt)
	tick(t, s)
	c2 := createConnector(t, fs, scopeA)
	if c2.Sources == nil || len(c2.Sources) != 0 {
		t.Fatalf("no sources read back as %#v, want an empty list", c2.Sources)
	}
	got, err := fs.GetFeishuConnector(ctx, scopeA, c1.ID)
	must(t, err)
	wantEqual(t, "read back", got, c1)
	list, total, err := fs.ListFeishuConnectors(ctx, scopeA, store.Page{})
	must(t, err)
	if total != 2 || len(list) != 2 || list[0].ID != c1.ID || list[1].ID != c2.ID {
		t.Fatalf("list: total %d, %+v", total, list)
	}
	for _, o := range otherScopes {
		_, err := fs.GetFeishuConnector(ctx, o, c1.ID)
		wantErr(t, err, store.ErrNotFound)
		_, err = fs.UpdateFeishuConnector(ctx, o, c1.ID, store.FeishuConnectorPatch{Name: new("x")})
		wantErr(t, err, store.ErrNotFound)
		_, n, err := fs.ListFeishuConnectors(ctx, o, store.Page{})
		must(t, err)
		if n != 0 {
			t.Fatalf("scope %+v sees %d connectors", o, n)
		}
	}
	_, err = fs.CreateFeishuConnector(ctx, store.FeishuConnector{Scope: scopeA, ID: c1.ID, Name: "again"})
	wantErr(t, err, store.ErrConflict)
	for _, bad := range [][]store.FeishuSource{{{Type: "sheet", Token: "x"}}, {{Type: "docx", Token: "a/../b"}},
		{{Type: "docx", Token: "x", RootNode: "n"}}, {{Type: "docx", Token: ""}}, {{Type: "wiki", Token: "s"}, {Type: "wiki", Token: "s"}}} {
		if _, err := fs.CreateFeishuConnector(ctx, store.FeishuConnector{Scope: scopeA, ID: newID("fc"), Name: "bad", Sources: bad}); err == nil {
			t.Fatalf("sources %+v accepted", bad)
		}
	}

	tick(t, s)
	off := false
	up, err := fs.UpdateFeishuConnector(ctx, scopeA, c1.ID, store.FeishuConnectorPatch{Enabled: &off})
	must(t, err)
	if up.Enabled || up.Name != "wiki" || len(up.Sources) != 3 || !up.UpdatedAt.After(c1.UpdatedAt) {
		t.Fatalf("after disabling: %+v", up)
	}
	one := []store.FeishuSource{{Type: "drive", Token: "fld2"}}
	up, err = fs.UpdateFeishuConnector(ctx, scopeA, c1.ID, store.FeishuConnectorPatch{Name: new("drive"), Sources: &one})
	must(t, err)
	if up.Enabled || up.Name != "drive" || !equalSources(up.Sources, one) {
		t.Fatalf("after renaming: %+v", up)
	}
	if _, err := fs.UpdateFeishuConnector(ctx, scopeA, c1.ID, store.FeishuConnectorPatch{Name: new("  ")}); err == nil {
		t.Fatal("a blank name was accepted")
	}
	got, err = fs.GetFeishuConnector(ctx, scopeA, c1.ID)
	must(t, err)
	wantEqual(t, "after a refused patch", got, up)
}

func equalSources(a, b []store.FeishuSource) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// testFeishuQueueSync: a sync is queued and linked to its connector; another
// is refused while it is queued or running (returning it), and queued again
// once it ended; a scheduled poll (minInterval) also waits for the interval
// and skips a disabled connector; ListDue lists what is due.
func testFeishuQueueSync(t *testing.T, s store.Store) {
	fs, js, ctx := feishuStore(t, s), jobStore(t, s), t.Context()
	c := createConnector(t, fs, scopeA, store.FeishuSource{Type: "wiki", Token: "sp"})
	other := createConnector(t, fs, scopeB)

	due, err := fs.ListDueFeishuConnectors(ctx, time.Now(), 10)
	must(t, err)
	if len(due) != 2 {
		t.Fatalf("due before any sync: %+v", due)
	}
	nj := syncJob(scopeA)
	j1, err := fs.QueueFeishuSync(ctx, scopeA, c.ID, nj, 0)
	must(t, err)
	if j1.ID != nj.ID || j1.Status != store.JobQueued || j1.Kind != store.KindFeishuSync {
		t.Fatalf("queued: %+v", j1)
	}
	got, err := fs.GetFeishuConnector(ctx, scopeA, c.ID)
	must(t, err)
	if got.LastJobID != j1.ID || got.LastQueuedAt == nil {
		t.Fatalf("connector after queueing: %+v", got)
	}
	dup, err := fs.QueueFeishuSync(ctx, scopeA, c.ID, syncJob(scopeA), 0)
	wantErr(t, err, store.ErrSyncActive)
	wantErr(t, err, store.ErrConflict)
	if dup.ID != j1.ID {
		t.Fatalf("the active job returned is %q, want %q", dup.ID, j1.ID)
	}
	_, err = fs.QueueFeishuSync(ctx, scopeB, c.ID, syncJob(scopeB), 0)
	wantErr(t, err, store.ErrNotFound)

	claimed, err := js.ClaimJob(ctx, "r", time.Minute)
	must(t, err)
	if claimed.ID != j1.ID {
		t.Fatalf("claimed %q", claimed.ID)
	}
	_, err = fs.QueueFeishuSync(ctx, scopeA, c.ID, syncJob(scopeA), 0)
	wantErr(t, err, store.ErrSyncActive)
	_, err = js.FinishJob(ctx, scopeA, j1.ID, "r", store.JobCompleted, store.JobProgress{}, "")
	must(t, err)

	// A poll within the interval queues nothing; after it, it does.
	_, err = fs.QueueFeishuSync(ctx, scopeA, c.ID, syncJob(scopeA), time.Hour)
	wantErr(t, err, store.ErrNotDue)
	due, err = fs.ListDueFeishuConnectors(ctx, s.(clockedStore).clock.now().Add(-time.Hour), 10)
	must(t, err)
	if len(due) != 1 || due[0].ID != other.ID {
		t.Fatalf("due within the hour: %+v", due)
	}
	s.(clockedStore).clock.ahead.Add(int64(2 * time.Hour))
	tick(t, s)
	j2, err := fs.QueueFeishuSync(ctx, scopeA, c.ID, syncJob(scopeA), time.Hour)
	must(t, err)
	tick(t, s)
	jobs, total, err := fs.ListFeishuConnectorJobs(ctx, scopeA, c.ID, store.Page{})
	must(t, err)
	if total != 2 || len(jobs) != 2 || jobs[0].ID != j2.ID || jobs[1].ID != j1.ID || jobs[1].Status != store.JobCompleted {
		t.Fatalf("connector jobs: total %d %+v", total, jobs)
	}
	for _, o := range otherScopes {
		_, n, err := fs.ListFeishuConnectorJobs(ctx, o, c.ID, store.Page{})
		must(t, err)
		if n != 0 {
			t.Fatalf("scope %+v sees %d jobs of the connector", o, n)
		}
	}

	off := false
	_, err = fs.UpdateFeishuConnector(ctx, scopeB, other.ID, store.FeishuConnectorPatch{Enabled: &off})
	must(t, err)
	_, err = fs.QueueFeishuSync(ctx, scopeB, other.ID, syncJob(scopeB), time.Minute)
	wantErr(t, err, store.ErrNotDue)
	due, err = fs.ListDueFeishuConnectors(ctx, s.(clockedStore).clock.now().Add(time.Hour), 10)
	must(t, err)
	if len(due) != 1 || due[0].ID != c.ID {
		t.Fatalf("due (the disabled one left out): %+v", due)
	}
	// A manual sync of a disabled connector is still allowed.
	_, err = fs.QueueFeishuSync(ctx, scopeB, other.ID, syncJob(scopeB), 0)
	must(t, err)
}

// testFeishuConcurrentQueue: daemons polling the same connector at once
// queue exactly one job between them.
func testFeishuConcurrentQueue(t *testing.T, s store.Store) {
	fs, ctx := feishuStore(t, s), t.Context()
	c := createConnector(t, fs, scopeP)
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		queued, active int
		other          []error
	)
	for range 8 {
		wg.Go(func() {
			_, err := fs.QueueFeishuSync(ctx, scopeP, c.ID, syncJob(scopeP), time.Minute)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				queued++
			case errors.Is(err, store.ErrSyncActive):
				active++
			default:
				other = append(other, err)
			}
		})
	}
	wg.Wait()
	if queued != 1 || active != 7 || len(other) != 0 {
		t.Fatalf("queued %d, refused as active %d, other errors %v", queued, active, other)
	}
	_, n, err := fs.ListFeishuConnectorJobs(ctx, scopeP, c.ID, store.Page{})
	must(t, err)
	if n != 1 {
		t.Fatalf("%d jobs for the connector", n)
	}
}

// testFeishuDocs: document records are upserted, listed by token, kept per
// scope and connector, and tombstones of other jobs are purged.
func testFeishuDocs(t *testing.T, s store.Store) {
	fs, ctx := feishuStore(t, s), t.Context()
	c := createConnector(t, fs, scopeA)
	put := func(d store.FeishuDoc) {
		t.Helper()
		d.ConnectorID = c.ID
		must(t, fs.PutFeishuDoc(ctx, scopeA, d))
	}
	put(store.FeishuDoc{Token: "b", ObjType: "docx", Title: "B", URL: "https://x/b", Version: "3", ContentHash: "h1", Sections: 2,
		JobID: "j1", Outcome: store.FeishuDocNew})
	put(store.FeishuDoc{Token: "a", Title: "A", Version: "1", JobID: "j1", Outcome: store.FeishuDocNew})
	put(store.FeishuDoc{Token: "c", Title: "C", JobID: "j1", Outcome: store.FeishuDocDeleted, Deleted: true})
	put(store.FeishuDoc{Token: "b", ObjType: "docx", Title: "B2", URL: "https://x/b", Version: "4", ContentHash: "h2", Sections: 5,
		JobID: "j2", Outcome: store.FeishuDocChanged})
	docs, err := fs.ListFeishuDocs(ctx, scopeA, c.ID)
	must(t, err)
	if len(docs) != 3 || docs[0].Token != "a" || docs[1].Token != "b" || docs[2].Token != "c" {
		t.Fatalf("docs: %+v", docs)
	}
	b := docs[1]
	if b.Title != "B2" || b.Version != "4" || b.ContentHash != "h2" || b.Sections != 5 || b.JobID != "j2" ||
		b.Outcome != store.FeishuDocChanged || b.Deleted || b.URL != "https://x/b" || b.ConnectorID != c.ID {
		t.Fatalf("replaced doc: %+v", b)
	}
	checkTime(t, "doc updated_at", b.UpdatedAt)
	if !docs[2].Deleted {
		t.Fatalf("tombstone: %+v", docs[2])
	}
	for _, o := range otherScopes {
		d, err := fs.ListFeishuDocs(ctx, o, c.ID)
		must(t, err)
		if len(d) != 0 {
			t.Fatalf("scope %+v sees %d docs", o, len(d))
		}
	}
	must(t, fs.PurgeFeishuTombstones(ctx, scopeA, c.ID, "j1")) // j1's own tombstone stays
	docs, err = fs.ListFeishuDocs(ctx, scopeA, c.ID)
	must(t, err)
	if len(docs) != 3 {
		t.Fatalf("after purging other jobs' tombstones: %+v", docs)
	}
	must(t, fs.PurgeFeishuTombstones(ctx, scopeA, c.ID, "j3"))
	docs, err = fs.ListFeishuDocs(ctx, scopeA, c.ID)
	must(t, err)
	if len(docs) != 2 || docs[0].Token != "a" || docs[1].Token != "b" {
		t.Fatalf("after purging: %+v", docs)
	}
}

package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

var jobCases = []testCase{
	{"Jobs/CreateGetListInputs", testJobCreateGetList},
	{"Jobs/ClaimProgressFinish", testJobLifecycle},
	{"Jobs/LapsedLeaseIsClaimedAgain", testJobLeaseLapse},
	{"Jobs/Cancel", testJobCancel},
	{"Jobs/ConcurrentClaimsTakeDistinctJobs", testJobConcurrentClaims},
}

func jobStore(t *testing.T, s store.Store) store.JobStore {
	t.Helper()
	js, ok := s.(clockedStore).Store.(store.JobStore)
	if !ok {
		t.Fatalf("%T does not keep jobs", s.(clockedStore).Store)
	}
	return js
}

func createJob(t *testing.T, js store.JobStore, scope store.Scope, inputs ...store.JobInput) store.Job {
	t.Helper()
	j, err := js.CreateJob(t.Context(), store.NewJob{Scope: scope, ID: newID("job"), Kind: "local_files",
		Params: json.RawMessage(`{"agent_id":"a1"}`), Total: len(inputs), Inputs: inputs})
	must(t, err)
	return j
}

// testJobCreateGetList: a job is created queued with its inputs (binary,
// empty, NUL bytes kept), read back equal, listed newest first, and not seen
// from another scope.
func testJobCreateGetList(t *testing.T, s store.Store) {
	js, ctx := jobStore(t, s), t.Context()
	bin := []byte{0, 1, 2, 0xff, 0}
	j1 := createJob(t, js, scopeA, store.JobInput{Seq: 0, Name: "a.bin", Data: bin}, store.JobInput{Seq: 1, Name: "empty.txt"})
	if j1.Status != store.JobQueued || j1.Total != 2 || j1.Kind != "local_files" || string(j1.Params) != `{"agent_id":"a1"}` ||
		j1.StartedAt != nil || j1.FinishedAt != nil || len(j1.Errors) != 0 || j1.Checkpoint != nil || j1.Scope != scopeA {
		t.Fatalf("created: %+v", j1)
	}
	checkTime(t, "created_at", j1.CreatedAt)
	tick(t, s)
	j2 := createJob(t, js, scopeA)
	got, err := js.GetJob(ctx, scopeA, j1.ID)
	must(t, err)
	wantEqual(t, "get", got, j1)
	in, err := js.JobInput(ctx, scopeA, j1.ID, 0)
	must(t, err)
	if in.Name != "a.bin" || string(in.Data) != string(bin) {
		t.Fatalf("input 0 = %q %v", in.Name, in.Data)
	}
	in, err = js.JobInput(ctx, scopeA, j1.ID, 1)
	must(t, err)
	if in.Name != "empty.txt" || len(in.Data) != 0 {
		t.Fatalf("input 1 = %+v", in)
	}
	_, err = js.JobInput(ctx, scopeA, j1.ID, 2)
	wantErr(t, err, store.ErrNotFound)

	list, total, err := js.ListJobs(ctx, scopeA, store.Page{})
	must(t, err)
	if total != 2 || len(list) != 2 || list[0].ID != j2.ID || list[1].ID != j1.ID {
		t.Fatalf("list: total %d, %+v", total, list)
	}
	list, total, err = js.ListJobs(ctx, scopeA, store.Page{Limit: 1, Offset: 1})
	must(t, err)
	if total != 2 || len(list) != 1 || list[0].ID != j1.ID {
		t.Fatalf("page 2: total %d, %+v", total, list)
	}
	for _, other := range otherScopes {
		_, err := js.GetJob(ctx, other, j1.ID)
		wantErr(t, err, store.ErrNotFound)
		_, err = js.JobInput(ctx, other, j1.ID, 0)
		wantErr(t, err, store.ErrNotFound)
		_, err = js.CancelJob(ctx, other, j1.ID)
		wantErr(t, err, store.ErrNotFound)
		list, total, err := js.ListJobs(ctx, other, store.Page{})
		must(t, err)
		if total != 0 || len(list) != 0 {
			t.Fatalf("scope %+v sees %d jobs", other, total)
		}
	}
	_, err = js.CreateJob(ctx, store.NewJob{Scope: scopeA, ID: j1.ID, Kind: "local_files"})
	wantErr(t, err, store.ErrConflict)
}

// testJobLifecycle: the oldest job is claimed first; progress is saved only
// by its owner, with errors capped; finishing deletes the inputs; a finished
// job is not claimed again.
func testJobLifecycle(t *testing.T, s store.Store) {
	js, ctx := jobStore(t, s), t.Context()
	j1 := createJob(t, js, scopeA, store.JobInput{Seq: 0, Name: "a.txt", Data: []byte("a")})
	tick(t, s)
	j2 := createJob(t, js, scopeB)

	c, err := js.ClaimJob(ctx, "runner-1", time.Minute)
	must(t, err)
	if c.ID != j1.ID || c.Status != store.JobRunning || c.Attempts != 1 || c.Scope != scopeA {
		t.Fatalf("first claim: %+v", c)
	}
	checkTimePtr(t, "started_at", c.StartedAt)
	c2, err := js.ClaimJob(ctx, "runner-2", time.Minute)
	must(t, err)
	if c2.ID != j2.ID || c2.Scope != scopeB {
		t.Fatalf("second claim: %+v", c2)
	}
	_, err = js.ClaimJob(ctx, "runner-3", time.Minute)
	wantErr(t, err, store.ErrNoWork)

	errs := make([]store.JobError, store.MaxJobErrors+5)
	for i := range errs {
		errs[i] = store.JobError{Item: fmt.Sprintf("f%d", i), Message: "bad"}
	}
	p := store.JobProgress{Done: 1, Total: 3, Counts: store.JobCounts{Found: 3, New: 1, Failed: len(errs)}, Errors: errs,
		Checkpoint: json.RawMessage(`{"next":1}`)}
	_, err = js.SaveJobProgress(ctx, scopeA, j1.ID, "runner-2", p, time.Minute)
	wantErr(t, err, store.ErrConflict)
	got, err := js.SaveJobProgress(ctx, scopeA, j1.ID, "runner-1", p, time.Minute)
	must(t, err)
	if got.Done != 1 || got.Total != 3 || got.Counts != p.Counts || len(got.Errors) != store.MaxJobErrors ||
		got.Errors[0] != errs[0] || string(got.Checkpoint) != `{"next":1}` || got.CancelRequested {
		t.Fatalf("after progress: %+v", got.JobProgress)
	}
	read, err := js.GetJob(ctx, scopeA, j1.ID)
	must(t, err)
	wantEqual(t, "read after progress", read, got)

	p.Done = 3
	_, err = js.FinishJob(ctx, scopeA, j1.ID, "runner-1", store.JobRunning, p, "")
	if err == nil {
		t.Fatal("finish with status running: no error")
	}
	fin, err := js.FinishJob(ctx, scopeA, j1.ID, "runner-1", store.JobCompleted, p, "")
	must(t, err)
	if fin.Status != store.JobCompleted || fin.Done != 3 {
		t.Fatalf("finished: %+v", fin)
	}
	checkTimePtr(t, "finished_at", fin.FinishedAt)
	_, err = js.JobInput(ctx, scopeA, j1.ID, 0)
	wantErr(t, err, store.ErrNotFound)
	_, err = js.SaveJobProgress(ctx, scopeA, j1.ID, "runner-1", p, time.Minute)
	wantErr(t, err, store.ErrConflict)
	_, err = js.FinishJob(ctx, scopeA, j1.ID, "runner-1", store.JobFailed, p, "x")
	wantErr(t, err, store.ErrConflict)
	failed, err := js.FinishJob(ctx, scopeB, j2.ID, "runner-2", store.JobFailed, store.JobProgress{}, "the source is gone")
	must(t, err)
	if failed.Status != store.JobFailed || failed.Error != "the source is gone" {
		t.Fatalf("failed: %+v", failed)
	}
	_, err = js.ClaimJob(ctx, "runner-3", time.Minute)
	wantErr(t, err, store.ErrNoWork)
}

// testJobLeaseLapse: a running job whose runner stopped renewing is claimed
// again once its lease ran out (not before), keeping its checkpoint, and the
// old owner can no longer write; a released job is claimable at once.
func testJobLeaseLapse(t *testing.T, s store.Store) {
	js, ctx := jobStore(t, s), t.Context()
	j := createJob(t, js, scopeA)
	_, err := js.ClaimJob(ctx, "old", time.Second)
	must(t, err)
	_, err = js.SaveJobProgress(ctx, scopeA, j.ID, "old", store.JobProgress{Done: 1, Total: 2, Checkpoint: json.RawMessage(`{"next":1}`)}, time.Second)
	must(t, err)
	_, err = js.ClaimJob(ctx, "new", time.Minute)
	wantErr(t, err, store.ErrNoWork)
	s.(clockedStore).clock.ahead.Add(int64(2 * time.Second))
	c, err := js.ClaimJob(ctx, "new", time.Minute)
	must(t, err)
	if c.ID != j.ID || c.Attempts != 2 || string(c.Checkpoint) != `{"next":1}` || c.Done != 1 {
		t.Fatalf("reclaimed: %+v", c)
	}
	_, err = js.SaveJobProgress(ctx, scopeA, j.ID, "old", store.JobProgress{}, time.Minute)
	wantErr(t, err, store.ErrConflict)

	must(t, js.ReleaseJob(ctx, scopeA, j.ID, "someone-else")) // not the owner: nothing
	_, err = js.ClaimJob(ctx, "third", time.Minute)
	wantErr(t, err, store.ErrNoWork)
	must(t, js.ReleaseJob(ctx, scopeA, j.ID, "new"))
	c, err = js.ClaimJob(ctx, "third", time.Minute)
	must(t, err)
	if c.ID != j.ID || c.Attempts != 3 {
		t.Fatalf("claimed after release: %+v", c)
	}
}

// testJobCancel: a queued job is cancelled at once (not claimable, inputs
// gone); a running one is flagged and its runner sees the flag; an ended one
// is a conflict.
func testJobCancel(t *testing.T, s store.Store) {
	js, ctx := jobStore(t, s), t.Context()
	q := createJob(t, js, scopeA, store.JobInput{Seq: 0, Name: "a", Data: []byte("x")})
	c, err := js.CancelJob(ctx, scopeA, q.ID)
	must(t, err)
	if c.Status != store.JobCancelled || !c.CancelRequested || c.FinishedAt == nil {
		t.Fatalf("cancelled queued: %+v", c)
	}
	_, err = js.JobInput(ctx, scopeA, q.ID, 0)
	wantErr(t, err, store.ErrNotFound)
	_, err = js.ClaimJob(ctx, "r", time.Minute)
	wantErr(t, err, store.ErrNoWork)
	_, err = js.CancelJob(ctx, scopeA, q.ID)
	wantErr(t, err, store.ErrConflict)

	r := createJob(t, js, scopeA)
	_, err = js.ClaimJob(ctx, "r", time.Minute)
	must(t, err)
	c, err = js.CancelJob(ctx, scopeA, r.ID)
	must(t, err)
	if c.Status != store.JobRunning || !c.CancelRequested {
		t.Fatalf("flagged running: %+v", c)
	}
	seen, err := js.SaveJobProgress(ctx, scopeA, r.ID, "r", store.JobProgress{Done: 1}, time.Minute)
	must(t, err)
	if !seen.CancelRequested {
		t.Fatal("the runner does not see the cancel request")
	}
	fin, err := js.FinishJob(ctx, scopeA, r.ID, "r", store.JobCancelled, seen.JobProgress, "")
	must(t, err)
	if fin.Status != store.JobCancelled {
		t.Fatalf("finished: %+v", fin)
	}
}

// testJobConcurrentClaims: runners claiming at once never get the same job.
func testJobConcurrentClaims(t *testing.T, s store.Store) {
	js, ctx := jobStore(t, s), t.Context()
	const n = 6
	for range n {
		createJob(t, js, scopeA)
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	errc := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			j, err := js.ClaimJob(ctx, fmt.Sprintf("r%d", i), time.Minute)
			if err != nil {
				errc <- err
				return
			}
			mu.Lock()
			seen[j.ID]++
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("claim: %v", err)
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("job %s claimed %d times", id, k)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d of %d jobs claimed", len(seen), n)
	}
}

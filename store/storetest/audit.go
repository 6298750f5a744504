package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

var auditCases = []testCase{
	{"Audit/AppendListFilter", testAuditList},
	{"Audit/Cursor", testAuditCursor},
	{"Audit/Retention", testAuditRetention},
	{"Audit/Refused", testAuditRefused},
	{"Audit/RetentionBatches", testAuditRetentionBatches},
	{"Audit/WithRun", testAuditWithRun},
}

func auditStore(t *testing.T, s store.Store) store.AuditStore {
	t.Helper()
	as, ok := s.(clockedStore).Store.(store.AuditStore)
	if !ok {
		t.Fatalf("%T does not keep an audit log", s.(clockedStore).Store)
	}
	return as
}

var auditT0 = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func auditRec(scope store.Scope, at time.Time, actor, action, target, outcome string) store.AuditRecord {
	return store.AuditRecord{Time: at, Scope: scope, Actor: actor, ActorName: "ci", Via: "token", Action: action,
		Target: target, ArgsHash: store.HashArgs([]byte(target)), Outcome: outcome, RequestID: "req-" + target, Detail: "d"}
}

func listAudit(t *testing.T, as store.AuditStore, scope store.Scope, f store.AuditFilter) []store.AuditRecord {
	t.Helper()
	recs, err := as.ListAudit(t.Context(), scope, f)
	must(t, err)
	return recs
}

// targets are the records' targets in the order listed.
func targets(recs []store.AuditRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Target
	}
	return out
}

// testAuditList: records read back field for field, newest first, only in
// their own scope, and every filter narrows.
func testAuditList(t *testing.T, s store.Store) {
	as, ctx := auditStore(t, s), t.Context()
	recs := []store.AuditRecord{
		auditRec(scopeA, auditT0, "token:t1", "POST /api/agents", "a1", "201"),
		auditRec(scopeA, auditT0.Add(time.Minute), "token:t2", "DELETE /api/agents/:agent_id", "a1", "204"),
		auditRec(scopeA, auditT0.Add(2*time.Minute), "token:t1", "POST /api/agents", "a2", "403"),
	}
	must(t, as.AppendAudit(ctx, recs))
	for _, sc := range otherScopes {
		must(t, as.AppendAudit(ctx, []store.AuditRecord{auditRec(sc, auditT0, "token:t1", "POST /api/agents", "a1", "201")}))
	}
	must(t, as.AppendAudit(ctx, nil))

	all := listAudit(t, as, scopeA, store.AuditFilter{})
	wantEqual(t, "targets newest first", targets(all), []string{"a2", "a1", "a1"})
	if !(all[0].ID > all[1].ID && all[1].ID > all[2].ID) {
		t.Fatalf("ids not decreasing: %d %d %d", all[0].ID, all[1].ID, all[2].ID)
	}
	got := all[2]
	want := recs[0]
	want.ID = got.ID
	wantEqual(t, "first record", got, want)

	wantEqual(t, "actor t1", targets(listAudit(t, as, scopeA, store.AuditFilter{Actor: "token:t1"})), []string{"a2", "a1"})
	wantEqual(t, "action delete", len(listAudit(t, as, scopeA, store.AuditFilter{Action: "DELETE /api/agents/:agent_id"})), 1)
	wantEqual(t, "target a1", len(listAudit(t, as, scopeA, store.AuditFilter{Target: "a1"})), 2)
	wantEqual(t, "since +1m", targets(listAudit(t, as, scopeA, store.AuditFilter{Since: auditT0.Add(time.Minute)})), []string{"a2", "a1"})
	wantEqual(t, "until +1m", len(listAudit(t, as, scopeA, store.AuditFilter{Until: auditT0.Add(time.Minute)})), 1)
	wantEqual(t, "actor and target", len(listAudit(t, as, scopeA, store.AuditFilter{Actor: "token:t2", Target: "a2"})), 0)
	for _, sc := range otherScopes {
		if n := len(listAudit(t, as, sc, store.AuditFilter{})); n != 1 {
			t.Fatalf("scope %+v sees %d records, want its own 1", sc, n)
		}
	}
}

// testAuditCursor: pages of limit records, each after the last id of the one
// before, cover every record once.
func testAuditCursor(t *testing.T, s store.Store) {
	as, ctx := auditStore(t, s), t.Context()
	var recs []store.AuditRecord
	for i := range 7 {
		recs = append(recs, auditRec(scopeA, auditT0.Add(time.Duration(i)*time.Second), "anonymous", "POST /api/runs", string(rune('a'+i)), "201"))
	}
	must(t, as.AppendAudit(ctx, recs))
	var seen []string
	var before int64
	for range 5 {
		page := listAudit(t, as, scopeA, store.AuditFilter{BeforeID: before, Limit: 3})
		seen = append(seen, targets(page)...)
		if len(page) < 3 {
			break
		}
		before = page[len(page)-1].ID
	}
	wantEqual(t, "pages", seen, []string{"g", "f", "e", "d", "c", "b", "a"})
}

// testAuditRetention: DeleteAuditBefore removes the older records of every
// scope and nothing newer.
func testAuditRetention(t *testing.T, s store.Store) {
	as, ctx := auditStore(t, s), t.Context()
	for _, sc := range append([]store.Scope{scopeA}, otherScopes...) {
		must(t, as.AppendAudit(ctx, []store.AuditRecord{
			auditRec(sc, auditT0, "anonymous", "POST /api/runs", "old", "201"),
			auditRec(sc, auditT0.Add(time.Hour), "anonymous", "POST /api/runs", "new", "201"),
		}))
	}
	n, err := as.DeleteAuditBefore(ctx, auditT0.Add(time.Hour))
	must(t, err)
	wantEqual(t, "deleted", n, int64(1+len(otherScopes)))
	wantEqual(t, "left", targets(listAudit(t, as, scopeA, store.AuditFilter{})), []string{"new"})
	n, err = as.DeleteAuditBefore(ctx, auditT0.Add(time.Hour))
	must(t, err)
	wantEqual(t, "deleted again", n, int64(0))
	// The gate closed with the retention transaction: records can still be
	// appended, and the next retention still works.
	must(t, as.AppendAudit(ctx, []store.AuditRecord{auditRec(scopeA, auditT0.Add(2*time.Hour), "anonymous", "POST /api/runs", "newer", "201")}))
	n, err = as.DeleteAuditBefore(ctx, auditT0.Add(90*time.Minute))
	must(t, err)
	wantEqual(t, "deleted the rest", n, int64(1+len(otherScopes)))
	wantEqual(t, "left at last", targets(listAudit(t, as, scopeA, store.AuditFilter{})), []string{"newer"})
}

// testAuditRefused: records without an actor, action or outcome, or with
// half a scope, are refused; one with no scope (a refused request that named
// none) and no time (the store's now) is kept; a list needs a scope.
func testAuditRefused(t *testing.T, s store.Store) {
	as, ctx := auditStore(t, s), t.Context()
	for _, r := range []store.AuditRecord{
		{Scope: scopeA, Action: "x", Outcome: "201"},
		{Scope: scopeA, Actor: "anonymous", Outcome: "201"},
		{Scope: scopeA, Actor: "anonymous", Action: "x"},
		{Scope: store.Scope{OrgID: "o"}, Actor: "anonymous", Action: "x", Outcome: "401"},
	} {
		if err := as.AppendAudit(ctx, []store.AuditRecord{r}); err == nil {
			t.Fatalf("AppendAudit(%+v) succeeded", r)
		}
	}
	must(t, as.AppendAudit(ctx, []store.AuditRecord{{Actor: "anonymous", Action: "GET /api/agents", Outcome: "401", Detail: "unknown_token"}}))
	before := time.Now()
	must(t, as.AppendAudit(ctx, []store.AuditRecord{{Scope: scopeA, Actor: "anonymous", Action: "x", Outcome: "201"}}))
	recs := listAudit(t, as, scopeA, store.AuditFilter{})
	if len(recs) != 1 {
		t.Fatalf("scope A has %d records, want 1", len(recs))
	}
	checkTime(t, "record time", recs[0].Time)
	if recs[0].Time.Before(before.Add(-time.Second)) {
		t.Fatalf("record time %v is before the append at %v", recs[0].Time, before)
	}
	if _, err := as.ListAudit(ctx, store.Scope{}, store.AuditFilter{}); err == nil {
		t.Fatal("ListAudit without a scope succeeded")
	}
}

// testAuditRetentionBatches: retention deletes more records than one of its
// transactions does, and a cancelled retention deletes nothing newer.
func testAuditRetentionBatches(t *testing.T, s store.Store) {
	as, ctx := auditStore(t, s), t.Context()
	n := store.AuditDeleteBatch + 7
	recs := make([]store.AuditRecord, n)
	for i := range recs {
		recs[i] = auditRec(scopeO, auditT0.Add(time.Duration(i)*time.Microsecond), "anonymous", "POST /api/runs", "old", "201")
	}
	must(t, as.AppendAudit(ctx, recs))
	must(t, as.AppendAudit(ctx, []store.AuditRecord{auditRec(scopeO, auditT0.Add(time.Hour), "anonymous", "POST /api/runs", "new", "201")}))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := as.DeleteAuditBefore(cancelled, auditT0.Add(time.Hour)); err == nil {
		t.Fatal("DeleteAuditBefore with a cancelled context succeeded")
	}
	deleted, err := as.DeleteAuditBefore(ctx, auditT0.Add(time.Hour))
	must(t, err)
	wantEqual(t, "deleted", deleted, int64(n))
	wantEqual(t, "left", targets(listAudit(t, as, scopeO, store.AuditFilter{})), []string{"new"})
}

// testAuditWithRun: a run created with its request's audit record
// (store.NewRun.Audit) stores both or neither: a refused run (no such agent,
// a taken id) leaves no record, and a record the log refuses stores no run.
func testAuditWithRun(t *testing.T, s store.Store) {
	as, ctx := auditStore(t, s), t.Context()
	if _, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "here"}); err != nil {
		t.Fatal(err)
	}
	newRun := func(runID, agentID string, rec store.AuditRecord) store.NewRun {
		return store.NewRun{Scope: scopeA, RunID: runID, MessageID: newID("msg"), AgentID: agentID, SessionKey: "s",
			Input: "hello", SenderType: store.SenderUser, SenderID: "alice", RequireAgent: true, Audit: &rec}
	}
	rec := auditRec(scopeA, auditT0, "token:t1", "POST /api/runs", "r1", "201")
	_, _, err := s.CreateRun(ctx, newRun("r1", "here", rec))
	must(t, err)
	got := listAudit(t, as, scopeA, store.AuditFilter{})
	if len(got) != 1 {
		t.Fatalf("%d records after creating a run with its record, want 1", len(got))
	}
	rec.ID = got[0].ID
	wantEqual(t, "the run's record", got[0], rec)

	_, _, err = s.CreateRun(ctx, newRun("r2", "ghost", auditRec(scopeA, auditT0, "token:t1", "POST /api/runs", "r2", "201")))
	wantErr(t, err, store.ErrNotFound)
	_, _, err = s.CreateRun(ctx, newRun("r1", "here", auditRec(scopeA, auditT0, "token:t1", "POST /api/runs", "r1-again", "201")))
	wantErr(t, err, store.ErrConflict)
	wantEqual(t, "records after two refused runs", targets(listAudit(t, as, scopeA, store.AuditFilter{})), []string{"r1"})

	bad := auditRec(scopeA, auditT0, "token:t1", "", "r3", "201") // no action
	if _, _, err := s.CreateRun(ctx, newRun("r3", "here", bad)); err == nil {
		t.Fatal("a run with an invalid audit record was created")
	}
	if _, err := s.GetRun(ctx, scopeA, "r3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the run of a refused record was stored: %v", err)
	}

	// A zero Time is the store's now.
	before := time.Now()
	_, _, err = s.CreateRun(ctx, newRun("r4", "here", store.AuditRecord{Scope: scopeA, Actor: "anonymous", Action: "POST /api/runs", Outcome: "201", Target: "r4"}))
	must(t, err)
	last := listAudit(t, as, scopeA, store.AuditFilter{Target: "r4"})
	if len(last) != 1 || last[0].Time.Before(before.Add(-time.Second)) {
		t.Fatalf("record of r4 = %+v, want one at about %v", last, before)
	}
}

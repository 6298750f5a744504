package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/migrations"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/storetest"
)

func open(t testing.TB, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, testenv.PostgresURL(t))
	})
}

// TestConcurrentOpen starts several stores at once on one fresh schema, as
// daemons starting together would: each migration is applied exactly once.
func TestConcurrentOpen(t *testing.T) {
	url := testenv.PostgresURL(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = Open(t.Context(), url, nil)
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open #%d: %v", i, errs[i])
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	list, err := migrations.List(Dialect)
	if err != nil {
		t.Fatal(err)
	}
	var count int
	var maxVersion int
	if err := stores[0].pool.QueryRow(t.Context(),
		"SELECT count(*), max(version) FROM schema_migrations").Scan(&count, &maxVersion); err != nil {
		t.Fatal(err)
	}
	if count != len(list) || maxVersion != list[len(list)-1].Version {
		t.Fatalf("schema_migrations: %d rows up to %d; want %d up to %d", count, maxVersion, len(list), list[len(list)-1].Version)
	}
	// Opening again applies nothing and works.
	s := open(t, url)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	_, err := Open(t.Context(), "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2", nil)
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if _, err := Open(t.Context(), "postgres://user:secret@[bad", nil); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Open of a bad URL: %v (must fail without quoting the password)", err)
	}
}

// TestErrorsStayInside checks that pgx's errors are translated, not passed on.
func TestErrorsStayInside(t *testing.T) {
	s := open(t, testenv.PostgresURL(t))
	ctx := t.Context()
	sc := store.Scope{OrgID: "o", UserID: "u"}
	_, err := s.CreateAgent(ctx, store.Agent{Scope: sc, ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateAgent(ctx, store.Agent{Scope: sc, ID: "a"})
	var pgErr *pgconn.PgError
	if !errors.Is(err, store.ErrConflict) || errors.As(err, &pgErr) {
		t.Fatalf("conflict error = %#v: want store.ErrConflict and no *pgconn.PgError", err)
	}
	_, err = s.GetAgent(ctx, sc, "missing")
	if !errors.Is(err, store.ErrNotFound) || errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("not found error = %#v: want store.ErrNotFound and not pgx.ErrNoRows", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.GetAgent(cctx, sc, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v, want context.Canceled", err)
	}
}

// TestSessionHistoryUsesIndex checks the plan of SessionHistory's query: an
// index scan of runs_session_completed_idx, whatever the table holds.
func TestSessionHistoryUsesIndex(t *testing.T) {
	s := open(t, testenv.PostgresURL(t))
	ctx := t.Context()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// A new table is small enough for a sequential scan to win; the question
	// is whether the index can serve the query without a sort.
	if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	plan := explain(t, tx, `SELECT run_id, input, output FROM runs
		WHERE org_id = 'o' AND user_id = 'u' AND project_id = '' AND agent_id = 'a' AND session_key = 's'
		  AND status = 'completed'
		ORDER BY ended_at DESC, run_id DESC LIMIT 10`)
	if !strings.Contains(plan, "runs_session_completed_idx") || strings.Contains(plan, "Sort") {
		t.Fatalf("plan does not read the session index in order:\n%s", plan)
	}
}

// TestHotPathGenericPlans checks the generic plans (those pgx's prepared
// statements settle on) of hot-path reads that once went wrong while the
// statistics said a scope was small: each must probe its index by key, not
// walk the scope's rows, or a turn's latency grows with every turn before it.
func TestHotPathGenericPlans(t *testing.T) {
	s := open(t, testenv.PostgresURL(t))
	for _, c := range []struct {
		name, types, sql, args string
		want                   []string // in the plan
		refuse                 []string // not in the plan
	}{
		{"last run event", "text, text, text, text", `SELECT ` + lastRunEvent, `'o', 'u', '', 'run_x'`,
			[]string{"events_run_idx"}, []string{"events_scope_idx"}},
		{"term dfs", "text, text, text, text[]", termDFQuery, `'o', 'u', '', ARRAY['a', 'b']`,
			[]string{"memory_terms_pkey", "term = t.term"}, []string{"Hash"}},
		{"ranked text search", "text, text, text, text[], int, float8, int, int", `WITH ` + rankedTextSearchQuery + ` ` + rankedPostings,
			`'o', 'u', '', ARRAY['a', 'b'], 16, 0.3, 400, 20`,
			[]string{"memory_terms_pkey", "term = u.term", "memory_postings_rank_idx"}, []string{"Hash Join"}},
		{"fused search", "text, text, text, text[], int, float8, int, int, text[], int[], float8[], int, bool, float8, float8, float8, bigint[]",
			fusedSearchQuery, `'o', 'u', '', ARRAY['a', 'b'], 16, 0.3, 400, 20, ARRAY['m'], ARRAY[0], ARRAY[0.5], 3, false, 60, 1, 0.25, ARRAY[7]::bigint[]`,
			[]string{"memory_terms_pkey", "term = u.term", "memory_postings_rank_idx", "memory_chunks_pkey",
				"id = kept.chunk_id", "memories_pkey"},
			[]string{"Hash Join", "Seq Scan on memor", "Join Filter"}},
		{"fill hits by id", "text, text, text, text[], int[], bigint[]", fillHitsByIDQuery, `'o', 'u', '', ARRAY['m'], ARRAY[0], ARRAY[7]::bigint[]`,
			[]string{"Index Cond: (id = k.chunk_id)", "memories_pkey"}, []string{"memory_chunks_scope_id_idx", "Hash", "Join Filter"}},
		{"fill hits", "text, text, text, text[], int[]", fillHitsQuery, `'o', 'u', '', ARRAY['m'], ARRAY[0]`,
			[]string{"memory_id = k.memory_id", "seq = k.seq"}, []string{"Hash", "Join Filter"}},
		{"claim pending", "text, text, text, text, timestamptz", claimPendingFirst, `'o', 'u', '', 'a', now()`,
			[]string{"runs_running_idx", "runs_waiting_idx"}, nil},
		{"claim history", "text, text, text, text, int", claimHistory, `'o', 'u', '', 'a', 8`,
			[]string{"runs_running_idx", "runs_session_completed_idx"}, []string{"Sort"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkGenericPlan(t, s, c.types, c.sql, c.args, c.want, c.refuse)
		})
	}
}

// explain is the text plan of stmt on db.
func explain(t *testing.T, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, stmt string) string {
	t.Helper()
	rows, err := db.Query(t.Context(), `EXPLAIN (FORMAT TEXT) `+stmt)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// checkGenericPlan checks the generic plan (the one pgx's prepared
// statements settle on) of sql, with parameters of types, for args: it has
// every string of want and none of refuse.
func checkGenericPlan(t *testing.T, s *Store, types, sql, args string, want, refuse []string) {
	t.Helper()
	ctx := t.Context()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(context.Background(), `RESET plan_cache_mode`) }()
	if _, err := conn.Exec(ctx, `PREPARE checked(`+types+`) AS `+sql); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(context.Background(), `DEALLOCATE checked`) }()
	plan := explain(t, conn, `EXECUTE checked(`+args+`)`)
	for _, w := range want {
		if !strings.Contains(plan, w) {
			t.Errorf("the plan has no %q:\n%s", w, plan)
		}
	}
	for _, r := range refuse {
		if strings.Contains(plan, r) {
			t.Errorf("the plan has %q:\n%s", r, plan)
		}
	}
}

// roundTrips counts the statements and batches the pool sends, each one
// network round trip once statements are prepared.
type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// countedStore opens a store on a fresh schema whose round trips are counted.
func countedStore(t testing.TB) (*Store, *roundTrips) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rt := &roundTrips{}
	cfg.ConnConfig.Tracer = rt
	s, err := openConfig(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, rt
}

// BenchmarkEnqueueMessages measures EnqueueMessages of batches of 1 and 64:
// ns/op is per batch; rt/op the round trips per batch.
func BenchmarkEnqueueMessages(b *testing.B) {
	for _, size := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, rt := countedStore(b)
			ctx := context.Background()
			sc := store.Scope{OrgID: "bench", UserID: "u"}
			batch := make([]store.NewMessage, size)
			n := 0
			next := func() {
				for i := range batch {
					n++
					batch[i] = store.NewMessage{Scope: sc, ID: fmt.Sprintf("m%d", n), AgentID: "a", SessionKey: "s",
						SenderType: store.SenderUser, SenderID: "u", Content: "a message of moderate length for the benchmark"}
				}
			}
			next()
			if _, err := s.EnqueueMessages(ctx, batch); err != nil { // prepares the statement
				b.Fatal(err)
			}
			rt.n.Store(0)
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				next()
				b.StartTimer()
				if _, err := s.EnqueueMessages(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rt.n.Load())/float64(b.N), "rt/op")
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkTurn measures one agent turn: ClaimNextRun, two SaveSteps (each a
// checkpoint and two events) and FinishRun. Enqueueing its message is not
// timed.
func BenchmarkTurn(b *testing.B) {
	s, rt := countedStore(b)
	ctx := context.Background()
	sc := store.Scope{OrgID: "bench", UserID: "u"}
	state := []byte(`{"messages":[{"role":"user","content":"hello"},{"role":"assistant","content":"hi, how can I help?"}]}`)
	n := 0
	turn := func() {
		n++
		c, err := s.ClaimNextRun(ctx, sc, "a", fmt.Sprintf("run-%d", n))
		if err != nil {
			b.Fatal(err)
		}
		for step := 1; step <= 2; step++ {
			_, err := s.SaveStep(ctx, sc, c.Run.ID, &store.Checkpoint{Step: step, State: state}, []store.Event{
				{Type: "llm.called", StepID: fmt.Sprint(step), Payload: []byte(`{"model":"m","tokens":42}`)},
				{Type: "tool.called", StepID: fmt.Sprint(step), Payload: []byte(`{"tool":"web.search"}`)},
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.FinishRun(ctx, sc, c.Run.ID, store.RunResult{Status: store.RunCompleted, Output: "done", Steps: 2},
			[]store.Event{{Type: "run.completed"}}); err != nil {
			b.Fatal(err)
		}
	}
	enqueue := func() {
		if _, err := s.EnqueueMessages(ctx, []store.NewMessage{{Scope: sc, ID: fmt.Sprintf("m%d", n), AgentID: "a",
			SessionKey: "s", Content: "hello"}}); err != nil {
			b.Fatal(err)
		}
	}
	enqueue()
	turn() // prepares the statements
	var timed int64
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		enqueue()
		before := rt.n.Load()
		b.StartTimer()
		turn()
		timed += rt.n.Load() - before
	}
	b.ReportMetric(float64(timed)/float64(b.N), "rt/op")
}

// TestDatabaseDownIsUnavailable stops a private PostgreSQL under an open
// store: every kind of call (a read, a write, a transaction, a ping) fails
// with store.ErrUnavailable, not an unclassified error, and once the server
// is back the same store works again without being reopened.
func TestDatabaseDownIsUnavailable(t *testing.T) {
	pg := testenv.StartPostgres(t)
	s := open(t, pg.URL())
	ctx := t.Context()
	scope := store.Scope{OrgID: "o", UserID: "u"}
	if _, err := s.CreateAgent(ctx, store.Agent{Scope: scope, ID: "a1", Name: "a1"}); err != nil {
		t.Fatal(err)
	}

	pg.Stop()
	calls := map[string]func() error{
		"GetAgent": func() error { _, err := s.GetAgent(ctx, scope, "a1"); return err },
		"EnqueueMessages": func() error {
			_, err := s.EnqueueMessages(ctx, []store.NewMessage{{Scope: scope, ID: "m1", AgentID: "a1", SessionKey: "s", SenderType: store.SenderUser, SenderID: "u", Content: "hi"}})
			return err
		},
		"ClaimNextRun": func() error { _, err := s.ClaimNextRun(ctx, scope, "a1", "r1"); return err },
		"CreateGroup":  func() error { _, err := s.CreateGroup(ctx, store.Group{Scope: scope, ID: "g", Name: "g"}); return err },
		"Ping":         func() error { return s.Ping(ctx) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the database down: %v, want store.ErrUnavailable", name, err)
		}
	}

	pg.Start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.GetAgent(ctx, scope, "a1")
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("GetAgent after the restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUnavailableClassification covers the server errors a restart produces
// that a stopped server (above) does not: a session ended by a shutdown, a
// server still starting up, and a broken connection.
func TestUnavailableClassification(t *testing.T) {
	ctx := context.Background()
	for _, code := range []string{"57P01", "57P02", "57P03", "08006", "08001"} {
		if !unavailable(ctx, &pgconn.PgError{Code: code}) {
			t.Errorf("SQLSTATE %s is not classified unavailable", code)
		}
	}
	for _, code := range []string{"23505", "42P01", "40001", "22P02"} {
		if unavailable(ctx, &pgconn.PgError{Code: code}) {
			t.Errorf("SQLSTATE %s is classified unavailable", code)
		}
	}
	s := &Store{}
	err := s.fail(ctx, "op", fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("fail(57P01) = %v, want store.ErrUnavailable", err)
	}
	if err := s.fail(ctx, "op", &pgconn.PgError{Code: "23505"}); errors.Is(err, store.ErrUnavailable) || !errors.Is(err, store.ErrConflict) {
		t.Errorf("fail(23505) = %v, want store.ErrConflict only", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.fail(cctx, "op", cctx.Err()); errors.Is(err, store.ErrUnavailable) {
		t.Errorf("the caller's own cancellation is classified unavailable: %v", err)
	}
}

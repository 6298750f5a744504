package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

func TestStatementKind(t *testing.T) {
	for sql, want := range map[string]string{
		"begin": "begin",
		"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY": "begin",
		"COMMIT": "commit",
		`SELECT set_config('synchronous_commit', 'off', true)`:                    "select set_config",
		`SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k`:   "select pg_advisory_xact_lock",
		`SELECT id, org_id FROM events WHERE org_id = $1 ORDER BY id`:             "select events",
		"WITH c AS (INSERT INTO memory_chunks (org_id) VALUES ($1) RETURNING id)": "insert memory_chunks",
		"UPDATE runs SET status = $7":                                             "update runs",
		"DELETE FROM run_summary_queue q USING unnest($1::text[])":                "delete run_summary_queue",
		`SELECT p.chunk_id, sum(t.idf * p.impact) AS s FROM unnest($4::text[], $5::float8[]) AS t(term, idf)
		CROSS JOIN LATERAL (SELECT chunk_id, impact FROM memory_postings WHERE true) p`: "select memory_postings",
		"SELECT pg_current_xact_id()":                                                                             "select pg_current_xact_id",
		"-- why it is written so\nUPDATE leases SET epoch = epoch + 1":                                            "update leases",
		"SELECT c.text FROM unnest($4::text[]) AS k(memory_id) JOIN memory_chunks c ON c.memory_id = k.memory_id": "select memory_chunks",
	} {
		if got := statementKind(sql); got != want {
			t.Errorf("statementKind(%q) = %q, want %q", sql, got, want)
		}
	}
}

// TestRoundTripsCounted: a statement sent alone is one round trip of its
// kind; background work is counted apart.
func TestRoundTripsCounted(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, testenv.PostgresURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	sc := store.Scope{OrgID: "o", UserID: "u"}
	f := store.EventFilter{RunID: "run_x", NoTotal: true}
	before := s.RoundTrips()
	if _, _, err := s.ListEvents(ctx, sc, f); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := s.ListEvents(store.WithBackground(ctx), sc, f); err != nil {
			t.Fatal(err)
		}
	}
	after := s.RoundTrips()
	if d := after["select events"] - before["select events"]; d != 1 {
		t.Errorf("select events: %d round trips, want 1", d)
	}
	if d := after["background: select events"] - before["background: select events"]; d != 2 {
		t.Errorf("background: select events: %d round trips, want 2", d)
	}
}

// TestDurableWriteInOneRoundTrip: a write that stores events and must be
// durable (FinishRun, AppendEvents) commits, releases its event locks and
// waits for the WAL flush in one round trip; one that fails stores nothing
// and leaves its connection fit for the next call.
func TestDurableWriteInOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, rt := countedStore(t)
	sc := store.Scope{OrgID: "durable", UserID: "u"}
	if _, err := s.EnqueueMessages(ctx, []store.NewMessage{{Scope: sc, ID: "m1", AgentID: "a", SessionKey: "s", Content: "hi"}}); err != nil {
		t.Fatal(err)
	}
	c, err := s.ClaimNextRun(ctx, sc, "a", "run-1")
	if err != nil {
		t.Fatal(err)
	}
	before := rt.n.Load()
	if _, err := s.FinishRun(ctx, sc, c.Run.ID, store.RunResult{Status: store.RunCompleted, Output: "done", Steps: 1},
		[]store.Event{{Type: "run.completed"}}); err != nil {
		t.Fatal(err)
	}
	if n := rt.n.Load() - before; n != 1 {
		t.Errorf("FinishRun took %d round trips, want 1", n)
	}
	before = rt.n.Load()
	if _, err := s.AppendEvents(ctx, []store.Event{{Scope: sc, Type: "note"}}); err != nil {
		t.Fatal(err)
	}
	if n := rt.n.Load() - before; n != 1 {
		t.Errorf("AppendEvents took %d round trips, want 1", n)
	}

	// Finishing it again fails inside the batch (the run is no longer
	// running): nothing of the call is stored, and every connection still
	// works, in autocommit with synchronous commits.
	_, err = s.FinishRun(ctx, sc, c.Run.ID, store.RunResult{Status: store.RunCompleted, Output: "again", Steps: 1},
		[]store.Event{{Type: "run.completed"}})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second FinishRun: %v, want ErrConflict", err)
	}
	evs, _, err := s.ListEvents(ctx, sc, store.EventFilter{RunID: c.Run.ID, Types: []string{"run.completed"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Errorf("run.completed stored %d times, want once", len(evs))
	}
	for range 4 {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var commit string
		err = conn.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&commit)
		status := conn.Conn().PgConn().TxStatus()
		conn.Release()
		if err != nil {
			t.Fatal(err)
		}
		if commit != "on" || status != 'I' {
			t.Errorf("a pooled connection is left with synchronous_commit %q, transaction status %q", commit, status)
		}
	}
}

// TestClaimWithExtrasInOneRoundTrip: a claim reads the claimed run's session
// history and the agent's core blocks in its own round trip.
func TestClaimWithExtrasInOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, rt := countedStore(t)
	sc := store.Scope{OrgID: "extras", UserID: "u"}
	if _, _, err := s.Memory().UpdateCoreBlock(ctx, sc, "a", "", func([]memory.CoreBlock) (memory.CoreBlock, error) {
		return memory.CoreBlock{Label: "human", Value: "likes tea", Limit: 100}, nil
	}); err != nil {
		t.Fatal(err)
	}
	extras := store.ClaimExtras{SessionHistory: 4, CoreBlocks: true}
	for i := range 3 {
		if _, _, err := s.CreateRun(ctx, store.NewRun{Scope: sc, RunID: fmt.Sprintf("run-%d", i), MessageID: fmt.Sprintf("m-%d", i),
			AgentID: "a", SessionKey: "s", Input: fmt.Sprintf("in %d", i), SenderType: store.SenderUser, SenderID: "u"}); err != nil {
			t.Fatal(err)
		}
		before := rt.n.Load()
		c, err := s.ClaimNextRun(ctx, sc, "a", "unused", extras)
		if err != nil {
			t.Fatal(err)
		}
		if n := rt.n.Load() - before; n != 1 {
			t.Errorf("claim %d took %d round trips, want 1", i, n)
		}
		if !c.HistoryRead || !c.CoreBlocksRead {
			t.Fatalf("claim %d read history %v, core blocks %v", i, c.HistoryRead, c.CoreBlocksRead)
		}
		if len(c.History) != i || (i > 0 && c.History[i-1].Output != fmt.Sprintf("out %d", i-1)) {
			t.Errorf("claim %d: history %+v", i, c.History)
		}
		if len(c.CoreBlocks) != 1 || c.CoreBlocks[0].Value != "likes tea" {
			t.Errorf("claim %d: core blocks %+v", i, c.CoreBlocks)
		}
		if _, err := s.FinishRun(ctx, sc, c.Run.ID, store.RunResult{Status: store.RunCompleted, Output: fmt.Sprintf("out %d", i), Steps: 1}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

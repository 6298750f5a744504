package postgres

import (
	"context"
	"testing"

	"github.com/openintern/openintern/internal/testenv"
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

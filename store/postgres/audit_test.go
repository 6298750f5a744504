package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
)

// TestAuditLogRefusesChanges: the audit log is append-only in the database
// itself: a raw UPDATE, DELETE or TRUNCATE on the daemon's own connection
// fails, and the records stay as they were, however the store is bypassed.
func TestAuditLogRefusesChanges(t *testing.T) {
	s := open(t, testenv.PostgresURL(t))
	ctx := t.Context()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	scope := store.Scope{OrgID: "o1", UserID: "u1"}
	if err := s.AppendAudit(ctx, []store.AuditRecord{{Time: at, Scope: scope, Actor: "token:t1", Action: "POST /api/agents", Target: "a1", Outcome: "201"}}); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE audit_log SET outcome = '500'`,
		`UPDATE audit_log SET actor = 'anonymous' WHERE target = 'a1'`,
		`DELETE FROM audit_log`,
		`TRUNCATE audit_log`,
		`DELETE FROM audit_log WHERE created_at >= '2026-01-01'`,
	} {
		_, err := s.pool.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: error %v, want the trigger's insufficient_privilege (42501)", stmt, err)
		}
	}
	recs, err := s.ListAudit(ctx, scope, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Outcome != "201" || recs[0].Actor != "token:t1" {
		t.Fatalf("records after the refused statements: %+v", recs)
	}
	// Retention is the one way out, and only for older records.
	if n, err := s.DeleteAuditBefore(ctx, at); err != nil || n != 0 {
		t.Fatalf("DeleteAuditBefore(at) = %d, %v; want 0 (the record is not older)", n, err)
	}
	if n, err := s.DeleteAuditBefore(ctx, at.Add(time.Microsecond)); err != nil || n != 1 {
		t.Fatalf("DeleteAuditBefore(at+1µs) = %d, %v; want 1", n, err)
	}
	var gates int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM audit_log_retention`).Scan(&gates); err != nil || gates != 0 {
		t.Fatalf("audit_log_retention has %d rows (%v) after retention, want 0", gates, err)
	}
}

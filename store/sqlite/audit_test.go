package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

// TestAuditLogRefusesChanges: the audit log is append-only in the file
// itself: a raw UPDATE or DELETE on the store's own connection fails, and the
// records stay as they were.
func TestAuditLogRefusesChanges(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "audit.db"))
	ctx := t.Context()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	scope := store.Scope{OrgID: "o1", UserID: "u1"}
	if err := s.AppendAudit(ctx, []store.AuditRecord{{Time: at, Scope: scope, Actor: "token:t1", Action: "POST /api/agents", Target: "a1", Outcome: "201"}}); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE audit_log SET outcome = '500'`,
		`DELETE FROM audit_log`,
	} {
		_, err := s.w.ExecContext(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error %v, want the trigger's refusal", stmt, err)
		}
	}
	recs, err := s.ListAudit(ctx, scope, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Outcome != "201" {
		t.Fatalf("records after the refused statements: %+v", recs)
	}
	if n, err := s.DeleteAuditBefore(ctx, at.Add(time.Microsecond)); err != nil || n != 1 {
		t.Fatalf("DeleteAuditBefore(at+1µs) = %d, %v; want 1", n, err)
	}
}

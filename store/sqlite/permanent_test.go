package sqlite

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/openintern/openintern/store"
)

// A write SQLite refuses for its data (a check or not-null violation) is
// store.ErrPermanent; a duplicate key stays ErrConflict, not permanent.
func TestRefusedDataIsPermanent(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "p.db"))
	ctx := t.Context()
	insert := func(id, kind string, content any) error {
		_, err := s.w.ExecContext(ctx, `INSERT INTO messages (org_id, user_id, project_id, message_id, agent_id, session_key, kind, sender_type, sender_id, content, status, created_at)
			VALUES ('o', 'u', '', ?, 'a', 's', ?, 'user', 'u', ?, 'unread', 0)`, id, kind, content)
		return fail("insert", err)
	}
	if err := insert("m1", "bogus", "x"); !errors.Is(err, store.ErrPermanent) {
		t.Fatalf("check violation: %v, want ErrPermanent", err)
	}
	if err := insert("m2", "message", nil); !errors.Is(err, store.ErrPermanent) {
		t.Fatalf("not-null violation: %v, want ErrPermanent", err)
	}
	if err := insert("m3", "message", "x"); err != nil {
		t.Fatal(err)
	}
	if err := insert("m3", "message", "x"); !errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrPermanent) {
		t.Fatalf("duplicate: %v, want ErrConflict only", err)
	}
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/openintern/openintern/migrations"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/storetest"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "openintern.db"))
	})
}

func TestOpenCreatesDirectoryAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "openintern.db")
	s, err := Open(t.Context(), path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := s.CreateAgent(t.Context(), store.Agent{Scope: store.Scope{OrgID: "o", UserID: "u"}, ID: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
	s = open(t, path)
	if _, err := s.GetAgent(t.Context(), store.Scope{OrgID: "o", UserID: "u"}, "a"); err != nil {
		t.Fatalf("agent after reopening: %v", err)
	}
	if n := countMigrations(t, s); n != wantMigrations(t) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, wantMigrations(t))
	}
}

func TestOpenRejectsNonFilePaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "x.db?mode=ro")} {
		if s, err := Open(t.Context(), p, nil); err == nil {
			_ = s.Close()
			t.Fatalf("Open(%q) succeeded", p)
		}
	}
}

// TestConcurrentOpen opens one new file from several stores at once, as
// daemons starting together would: each migration is applied once.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "openintern.db")
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(t.Context(), path, nil)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open #%d: %v", i, errs[i])
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	if got := countMigrations(t, stores[0]); got != wantMigrations(t) {
		t.Fatalf("schema_migrations has %d rows, want %d", got, wantMigrations(t))
	}
	// All of them work on the one file.
	sc := store.Scope{OrgID: "o", UserID: "u"}
	for i, s := range stores {
		if _, err := s.EnqueueMessages(t.Context(), []store.NewMessage{{Scope: sc, ID: string(rune('a' + i)), AgentID: "x"}}); err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}
	if _, total, err := stores[0].ListMessages(t.Context(), sc, "x", "", store.Page{}); err != nil || total != n {
		t.Fatalf("ListMessages = %d, %v; want %d", total, err, n)
	}
}

// TestConcurrentWriters checks that writers of one store queue instead of
// failing with SQLITE_BUSY, while readers read.
func TestConcurrentWriters(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "openintern.db"))
	sc := store.Scope{OrgID: "o", UserID: "u"}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errc := make(chan error, writers*each*2)
	for w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range each {
				_, err := s.AppendEvents(t.Context(), []store.Event{{Scope: sc, Type: "e", StepID: string(rune('a' + w)), RunID: string(rune('a' + i))}})
				errc <- err
			}
		}()
		go func() {
			defer wg.Done()
			for range each {
				_, _, err := s.ListEvents(t.Context(), sc, store.EventFilter{})
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, total, err := s.ListEvents(t.Context(), sc, store.EventFilter{}); err != nil || total != writers*each {
		t.Fatalf("events = %d, %v; want %d", total, err, writers*each)
	}
}

func TestPragmas(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "openintern.db"))
	ctx := t.Context()
	for name, db := range map[string]*sql.DB{"writer": s.w, "reader": s.r} {
		var mode string
		var fk, syncMode, busy int
		if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("%s journal_mode = %q, %v", name, mode, err)
		}
		if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
			t.Fatalf("%s foreign_keys = %d, %v", name, fk, err)
		}
		if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&syncMode); err != nil || syncMode != 1 {
			t.Fatalf("%s synchronous = %d, %v; want 1 (NORMAL)", name, syncMode, err)
		}
		if err := db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil || busy != int(busyTimeout.Milliseconds()) {
			t.Fatalf("%s busy_timeout = %d, %v", name, busy, err)
		}
	}
	// The read pool cannot write.
	if _, err := s.r.ExecContext(ctx, "DELETE FROM agents"); err == nil {
		t.Fatal("the read pool wrote")
	}
	if got := s.w.Stats().MaxOpenConnections; got != 1 {
		t.Fatalf("writer MaxOpenConnections = %d, want 1", got)
	}
}

func TestCancelledContext(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "openintern.db"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.EnqueueMessages(ctx, []store.NewMessage{{Scope: store.Scope{OrgID: "o", UserID: "u"}, ID: "m", AgentID: "a"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

func countMigrations(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantMigrations(t *testing.T) int {
	t.Helper()
	list, err := migrations.List(Dialect)
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// TestSessionHistoryUsesIndex checks the plan of SessionHistory's query: a
// search of runs_session_completed_idx that needs no sort.
func TestSessionHistoryUsesIndex(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "openintern.db"))
	rows, err := s.r.QueryContext(t.Context(), `EXPLAIN QUERY PLAN SELECT run_id, input, output FROM runs
		WHERE `+scopeCond+` AND agent_id = ? AND session_key = ? AND status = 'completed'
		ORDER BY ended_at DESC, run_id DESC LIMIT ?`, "o", "u", "", "a", "s", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "USING INDEX runs_session_completed_idx") || strings.Contains(text, "TEMP B-TREE") {
		t.Fatalf("plan does not read the session index in order:\n%s", text)
	}
}

// TestLockedPastBusyTimeoutIsUnavailable: when another process holds the
// file's write lock for longer than busyTimeout, a write fails with
// store.ErrUnavailable (a retry may succeed), not an unclassified error; once
// the lock is released the same store writes again.
func TestLockedPastBusyTimeoutIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "openintern.db")
	s := open(t, path)
	ctx := t.Context()
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("take the write lock: %v", err)
	}
	scope := store.Scope{OrgID: "o", UserID: "u"}
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scope, ID: "a", Name: "a"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("write while another process holds the lock: %v, want store.ErrUnavailable", err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAgent(ctx, store.Agent{Scope: scope, ID: "a", Name: "a"}); err != nil {
		t.Fatalf("write after the lock is released: %v", err)
	}
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/openintern/openintern/migrations"
	"github.com/openintern/openintern/store"
)

// Dialect is what Store.Dialect returns.
const Dialect = "sqlite"

// busyTimeout is how long a connection waits for another process's lock.
const busyTimeout = 10 * time.Second

// Store is store.Store on one SQLite file. It is safe for concurrent use.
type Store struct {
	w      *sql.DB // the one writer: every write transaction
	r      *sql.DB // query-only readers
	logger *slog.Logger
	clock  store.Clock

	// The per-scope quotas CreateAgent, EnsureAgent and InsertMemories enforce.
	store.QuotaSettings

	// daemonLock holds the file's daemon lock (Daemon) until Close.
	daemonLock *os.File
}

var _ store.Store = (*Store)(nil)

// Option is an option of Open.
type Option func(*options)

type options struct{ daemon bool }

// Daemon opens the file as the one daemon serving it: Open fails with an
// error wrapping store.ErrStoreLocked while another process (or another
// Store of this one) has it open so, and the lock ends with the process or
// Close. SQLite has one writer, so daemons cannot share a file; commands
// that open the store beside a running daemon (tokens, doctor, memory
// reembed) open it without this option.
func Daemon() Option { return func(o *options) { o.daemon = true } }

// Open opens (creating it and its directory when missing) the database file
// at path, and applies pending migrations. A nil logger discards.
func Open(ctx context.Context, path string, logger *slog.Logger, opts ...Option) (s *Store, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, ":") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open: %q is not a plain file path", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var lock *os.File
	if o.daemon {
		if lock, err = lockDaemon(path); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil && lock != nil {
				_ = lock.Close()
			}
		}()
	}
	pragmas := url.Values{}
	pragmas.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	pragmas.Set("_journal_mode", "WAL")
	pragmas.Set("_synchronous", "NORMAL")
	pragmas.Set("_foreign_keys", "1")

	wq := url.Values{}
	for k, v := range pragmas {
		wq[k] = v
	}
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s = &Store{w: w, logger: logger, daemonLock: lock}
	// The writer opens the file first: it creates it and turns WAL on.
	if err := pingRetry(ctx, w); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = w.Close()
		return nil, err
	}

	rq := url.Values{}
	for k, v := range pragmas {
		rq[k] = v
	}
	rq.Del("_journal_mode") // kept by the file; setting it needs a lock
	rq.Set("_query_only", "1")
	r, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.r = r
	if err := pingRetry(ctx, r); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// pingRetry opens a first connection of db, retrying while the file is
// busy. Switching a new file to WAL takes an exclusive lock for which SQLite
// does not always wait (it returns SQLITE_BUSY at once where waiting could
// deadlock), so processes opening one new file together need this.
func pingRetry(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(busyTimeout)
	wait := 5 * time.Millisecond
	for {
		err := db.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// isBusy reports whether err is SQLITE_BUSY or SQLITE_LOCKED, extended codes included.
func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	primary := se.Code() & 0xff
	return primary == sqlite3.SQLITE_BUSY || primary == sqlite3.SQLITE_LOCKED
}

// migrate applies the migrations not yet recorded, each in an IMMEDIATE
// transaction that holds the file's write lock while it checks and applies.
func (s *Store) migrate(ctx context.Context) error {
	list, err := migrations.List(Dialect)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at INTEGER NOT NULL
		) STRICT`)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: migrate: create schema_migrations: %w", err)
	}
	for _, m := range list {
		applied := false
		err := s.writeTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, micros(s.now())); err != nil {
				return err
			}
			applied = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("sqlite: migrate: apply %04d_%s: %w", m.Version, m.Name, err)
		}
		if applied {
			s.logger.Info("sqlite: migration applied", "version", m.Version, "name", m.Name)
		}
	}
	return nil
}

// Ping checks both pools can reach the file.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Dialect returns "sqlite".
func (s *Store) Dialect() string { return Dialect }

// Close closes both pools.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if s.daemonLock != nil {
		// After the pools: the next daemon may open the file once this returns.
		errs = append(errs, s.daemonLock.Close())
		s.daemonLock = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// writeTx runs fn in a transaction of the single writer, committing when fn
// returns nil.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// readTx runs fn in a read transaction, so that its queries see one snapshot.
func (s *Store) readTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// fail turns a driver error into the error a caller of the store sees:
// "sqlite: <op>: ..." wrapping store.ErrNotFound for no rows and
// store.ErrConflict for a unique or primary key violation.
func fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	if isBusy(err) {
		// Another process held the file's lock for longer than busyTimeout:
		// nothing was written, and a later try may succeed.
		return fmt.Errorf("sqlite: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("sqlite: %s: %s: %w", op, se.Error(), store.ErrConflict)
		case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_MISMATCH:
			// The data itself is refused: retrying the same write cannot succeed.
			return store.Permanent(fmt.Errorf("sqlite: %s: %w", op, err))
		}
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// now is the store's clock: UTC at microsecond precision, what the file keeps.
func (s *Store) now() time.Time { return s.clock.Now() }

// SetClock replaces the store's clock (nil: the wall clock), for tests that
// need distinct or chosen times without sleeping. Call it before using the store.
func (s *Store) SetClock(c store.Clock) { s.clock = c }

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// scopeArgs are the first arguments of every scoped query.
func scopeArgs(scope store.Scope, more ...any) []any {
	return append([]any{scope.OrgID, scope.UserID, scope.ProjectID}, more...)
}

// scopeCond is the condition that goes with scopeArgs.
const scopeCond = `org_id = ? AND user_id = ? AND project_id = ?`

// queryRows runs a query and calls scan for each row.
func queryRows(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// listPage counts the rows countSQL selects and reads the page pageSQL
// selects, in one read transaction so the two agree.
func listPage[T any](ctx context.Context, s *Store, countSQL string, countArgs []any, pageSQL string, pageArgs []any,
	scan func(scanner) (T, error)) ([]T, int, error) {
	var total int
	out := []T{}
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		out, total = out[:0], 0
		if err := tx.QueryRowContext(ctx, countSQL, countArgs...).Scan(&total); err != nil {
			return err
		}
		return queryRows(ctx, tx, pageSQL, pageArgs, func(rows *sql.Rows) error {
			v, err := scan(rows)
			out = append(out, v)
			return err
		})
	})
	return out, total, err
}

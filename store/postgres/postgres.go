package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openintern/openintern/migrations"
	"github.com/openintern/openintern/store"
)

// Dialect is what Store.Dialect returns.
const Dialect = "postgres"

// migrationLockKey is the advisory lock held while migrations are applied:
// the bytes of "oi:migra". Per-agent claim locks are FNV hashes and may in
// theory collide with it, which would only make a claim wait for a migration.
const migrationLockKey int64 = 0x6f693a6d69677261

// Store is store.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	clock  store.Clock

	// Background work of the store (loading a scope's vectors into memory)
	// runs on bg and ends before Close returns.
	bg       context.Context
	bgCancel context.CancelFunc
	bgMu     sync.Mutex // orders goBackground against Close
	bgClosed bool
	bgWG     sync.WaitGroup

	// The per-scope quotas CreateAgent, EnsureAgent and InsertMemories enforce.
	store.QuotaSettings

	trips *roundTripCounter
}

// RoundTrips returns the round trips to PostgreSQL since the store opened,
// by statement kind (a batch counts once, as "batch: " and its kinds).
func (s *Store) RoundTrips() map[string]int64 { return s.trips.RoundTrips() }

// goBackground runs fn in a goroutine Close waits for; false (fn not run)
// once the store is closing.
func (s *Store) goBackground(fn func(ctx context.Context)) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.bgClosed {
		return false
	}
	s.bgWG.Go(func() { fn(s.bg) })
	return true
}

var _ store.Store = (*Store)(nil)

// dbtx is what a pool and a transaction have in common, so a query helper
// works on either.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

var (
	_ dbtx = (*pgxpool.Pool)(nil)
	_ dbtx = (pgx.Tx)(nil)
)

// Open connects to databaseURL (a postgres:// URL or key=value DSN; runtime
// parameters such as search_path, and pgxpool's pool_max_conns, may be given
// as query parameters), checks the connection and applies pending
// migrations. A nil logger discards.
func Open(ctx context.Context, databaseURL string, logger *slog.Logger) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// The parse error may quote the URL with its password: don't wrap it.
		return nil, errors.New("postgres: open: cannot parse the database URL")
	}
	return openConfig(ctx, cfg, logger)
}

func openConfig(ctx context.Context, cfg *pgxpool.Config, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	trips := newRoundTripCounter(cfg.ConnConfig.Tracer)
	cfg.ConnConfig.Tracer = trips
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{pool: pool, logger: logger, trips: trips}
	s.bg, s.bgCancel = context.WithCancel(store.WithBackground(context.Background()))
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: ping %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// migrate applies the migrations not yet recorded, each in its own
// transaction, while holding a session advisory lock so that concurrent
// daemons apply each exactly once.
func (s *Store) migrate(ctx context.Context) error {
	list, err := migrations.List(Dialect)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return s.fail(ctx, "migrate: lock", err)
	}
	defer func() {
		// Unlock even when ctx is done; a failed unlock ends with the session.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrationLockKey); err != nil {
			s.logger.Warn("postgres: migrate: unlock failed; closing the connection", "err", err)
			_ = conn.Conn().Close(uctx)
		}
	}()
	const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER     PRIMARY KEY,
		name       TEXT        NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
	)`
	if _, err := conn.Exec(ctx, createTable); err != nil {
		return s.fail(ctx, "migrate: create schema_migrations", err)
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return s.fail(ctx, "migrate: read schema_migrations", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return s.fail(ctx, "migrate: read schema_migrations", err)
	}
	for _, v := range versions {
		applied[int(v)] = true
	}
	for _, m := range list {
		if applied[m.Version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return s.fail(ctx, fmt.Sprintf("migrate: apply %04d_%s", m.Version, m.Name), err)
		}
		s.logger.Info("postgres: migration applied", "version", m.Version, "name", m.Name)
	}
	return nil
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.fail(ctx, "ping", err)
	}
	return nil
}

// Dialect returns "postgres".
func (s *Store) Dialect() string { return Dialect }

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.bgMu.Lock()
	s.bgClosed = true
	s.bgMu.Unlock()
	s.bgCancel()
	s.bgWG.Wait()
	s.pool.Close()
	return nil
}

// An asynchronous commit (queuePrelude's async) returns without waiting
// for the transaction's WAL flush. It is used for a run's progress (claims, steps, agent
// states): a crash of the daemon loses none of it, since PostgreSQL has it; a
// crash of PostgreSQL itself can lose the last fraction of a second of
// progress, which recovery redoes from the previous checkpoint. Accepting a
// message and finishing a run (marking its messages read) always wait for the
// flush, and because the WAL is sequential, so does every progress commit
// before them.

// Event ids in commit order. A stream reads a scope's events by id after its
// cursor, so an id must never become visible after a higher id of the same
// scope: with identity values drawn by concurrent transactions, one that
// commits late with a lower id would be skipped by every reader already past
// it (a group stream lost about 6 % of its events that way). Every statement
// that inserts events therefore first takes its scopes' event locks
// (transaction-scoped advisory locks, taken before any row lock, so they add
// no deadlock), draws its ids under them and keeps them until it commits:
// within a scope, ids are drawn in commit order and what a reader sees is
// always a prefix. Scopes do not wait for each other.

// scopeEventLockKey is the advisory lock of a scope's event ids.
func scopeEventLockKey(scope store.Scope) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("events\x00"))
	for _, part := range []string{scope.OrgID, scope.UserID, scope.ProjectID} {
		_, _ = h.Write([]byte(part))
		_, _ = h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

// eventLockKeys returns the event locks of the events' scopes, in the
// ascending order every statement takes them in.
func eventLockKeys(events []store.Event) []int64 {
	keys := make([]int64, 0, 1)
	for _, e := range events {
		k := scopeEventLockKey(e.Scope)
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// queryRowWithEvents runs one statement that inserts events of the scopes
// whose event locks are keys, in its own transaction, after taking those
// locks and checking ctx's fence (store.WithFence), in one round trip (a
// pipelined batch).
// The transaction commits without waiting for its WAL flush (asynchronous),
// so the locks are not held through a disk flush and a scope's writers still
// share flushes. Unless async, the same batch then runs a second transaction
// that takes an xid (pg_current_xact_id): its synchronous commit waits for
// the WAL up to it, ours included, so the call returns only once the
// statement is durable, as a synchronous commit would, in the same round
// trip. That needs the first transaction to end inside the batch, hence its
// explicit BEGIN and COMMIT; if any statement fails, PostgreSQL skips the
// rest of the batch and rolls the transaction back.
func (s *Store) queryRowWithEvents(ctx context.Context, async bool, keys []int64, sql string, args ...any) pgx.Row {
	b := &pgx.Batch{}
	// Without event locks there is nothing to release early: a synchronous
	// commit makes the statement durable by itself.
	syncCommit := !async && len(keys) == 0
	durable := !async && !syncCommit
	if durable {
		b.Queue("BEGIN")
	}
	// The fence is that of a write of a turn or a group step: its lease's.
	queuePrelude(ctx, b, !syncCommit, keys)
	b.Queue(sql, args...)
	tail := 0
	if durable {
		b.Queue("COMMIT")
		b.Queue(`SELECT pg_current_xact_id()`)
		tail = 2
	}
	br := s.pool.SendBatch(ctx, b)
	for range b.Len() - 1 - tail {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return errRow{err}
		}
	}
	return &batchRow{row: br.QueryRow(), br: br, tail: tail}
}

// batchRow closes its batch once scanned, after reading the tail
// statements queued behind its row (their results say nothing but an error).
type batchRow struct {
	row  pgx.Row
	br   pgx.BatchResults
	tail int
}

func (r *batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	for range r.tail {
		if err != nil {
			break
		}
		if _, err = r.br.Exec(); err != nil {
			err = fmt.Errorf("commit and wait for the WAL flush: %w", err)
		}
	}
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// fail turns a pgx error into the error a caller of the store sees:
// "postgres: <op>: ..." wrapping store.ErrNotFound for no rows,
// store.ErrConflict for a unique violation, the store's own sentinels as they
// are, server errors as text, and anything else (network, context) wrapped.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNoWork) ||
		errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrQuotaExceeded) || errors.Is(err, store.ErrFenced) {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if unavailable(ctx, err) {
		return fmt.Errorf("postgres: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == fenceSQLState {
		return fmt.Errorf("postgres: %s: %s: %w", op, pgErr.Message, store.ErrFenced)
	}
	if errors.As(err, &pgErr) {
		if pgErr.Code == "23505" { // unique_violation
			return fmt.Errorf("postgres: %s: %s already exists: %w", op, pgErr.ConstraintName, store.ErrConflict)
		}
		msg := fmt.Sprintf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
		if ctx.Err() != nil {
			return fmt.Errorf("postgres: %s: %s: %w", op, msg, ctx.Err())
		}
		if permanentSQLState(pgErr.Code) {
			return store.Permanent(fmt.Errorf("postgres: %s: %s", op, msg))
		}
		return fmt.Errorf("postgres: %s: %s", op, msg)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// permanentSQLState reports whether an error of that SQLSTATE is about the
// data written (class 22, data exception: a NUL in text, a bad encoding, a
// value out of range; 23502 not-null and 23514 check violations), so the same
// write fails again however often it is retried.
func permanentSQLState(code string) bool {
	return strings.HasPrefix(code, "22") || code == "23502" || code == "23514"
}

// unavailable reports whether err says the database could not be reached or
// is going away, rather than that the statement was wrong: a refused, reset or
// broken connection, a server shutting down or starting up (57P01-57P03), any
// connection exception (class 08), or a context that ran out while no
// connection could be had. Such a failure is worth a retry after a moment.
func unavailable(ctx context.Context, err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "53300": // admin/crash shutdown, cannot connect now, too many connections
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08")
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	case pgconn.SafeToRetry(err):
		// pgx says nothing was sent: the connection failed before the statement.
		return true
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		// A deadline of pgx's own (connect or acquire timeout), not the caller's.
		return true
	}
	// A pgx connection closed under a statement reports "conn closed" without
	// a type to match.
	return strings.Contains(err.Error(), "conn closed")
}

// now is the store's clock: UTC at the microsecond precision of timestamptz,
// so what a method returns equals what a later read returns.
func (s *Store) now() time.Time { return s.clock.Now() }

// SetClock replaces the store's clock (nil: the wall clock), for tests that
// need distinct or chosen times without sleeping. Call it before using the store.
func (s *Store) SetClock(c store.Clock) { s.clock = c }

// utc normalises a time read from the database.
func utc(t time.Time) time.Time { return t.UTC() }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// agentLockKey is the advisory lock that serialises ClaimNextRun per agent.
func agentLockKey(scope store.Scope, agentID string) int64 {
	h := fnv.New64a()
	for _, part := range []string{scope.OrgID, scope.UserID, scope.ProjectID, agentID} {
		_, _ = h.Write([]byte(part))
		_, _ = h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

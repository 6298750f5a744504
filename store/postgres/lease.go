package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

var _ store.LeaseStore = (*Store)(nil)

// Leases are read and written on the database's clock, clock_timestamp()
// rather than now(): now() is when the transaction began, and a statement
// that waited for a row lock (a takeover waiting for a fenced write) must
// judge expiry at the moment it decides.

// fenceSQLState is what openintern_check_fence raises (migration 0024).
const fenceSQLState = "OIF01"

// queuePrelude queues the start of a write transaction into b, as one
// statement (openintern_write_prelude, migration 0026): an asynchronous
// commit when async (see inTx), the advisory locks in the order given
// (sorted by the caller), then ctx's fence check, if any. It queues nothing
// when there is nothing to do.
func queuePrelude(ctx context.Context, b *pgx.Batch, async bool, locks []int64) {
	l, fenced := store.FenceOf(ctx)
	switch {
	case !fenced && (async || len(locks) > 0):
		b.Queue(`SELECT openintern_write_prelude($1, $2, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`, async, locks)
	case fenced:
		b.Queue(`SELECT openintern_write_prelude($1, $2, $3, $4, $5, $6, $7, $8, $9)`, async, locks,
			l.Scope.OrgID, l.Scope.UserID, l.Scope.ProjectID, l.Kind, l.Key, l.NodeID, l.Epoch)
	}
}

func micros(d time.Duration) int64 { return d.Microseconds() }

const leaseCols = `org_id, user_id, project_id, kind, key, node_id, epoch, expires_at, expires_at > clock_timestamp()`

func scanLease(row pgx.Row) (store.Lease, error) {
	var l store.Lease
	err := row.Scan(&l.Scope.OrgID, &l.Scope.UserID, &l.Scope.ProjectID, &l.Kind, &l.Key, &l.NodeID, &l.Epoch,
		&l.ExpiresAt, &l.Live)
	l.ExpiresAt = utc(l.ExpiresAt)
	return l, err
}

func collectLeases(rows pgx.Rows) ([]store.Lease, error) {
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Lease, error) { return scanLease(row) })
	if out == nil {
		out = []store.Lease{}
	}
	return out, err
}

// AcquireLease gives ref to nodeID (see store.LeaseStore). One upsert
// decides: concurrent acquirers of one row queue on its lock, and each
// judges the row the previous one left, so exactly one of them takes a free
// lease and the epoch grows by one per change of hands.
func (s *Store) AcquireLease(ctx context.Context, ref store.LeaseRef, nodeID string, ttl time.Duration) (store.Lease, error) {
	if err := store.CheckAcquire(&ref, nodeID, ttl); err != nil {
		return store.Lease{}, fmt.Errorf("postgres: acquire lease: %w", err)
	}
	args := []any{ref.Scope.OrgID, ref.Scope.UserID, ref.Scope.ProjectID, ref.Kind, ref.Key, nodeID, micros(ttl)}
	// A lease read as held may be released before it is reported: try again
	// a few times rather than report a lease that is no longer live.
	for range 3 {
		l, err := scanLease(s.pool.QueryRow(ctx, `INSERT INTO leases AS l
				(org_id, user_id, project_id, kind, key, node_id, epoch, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, 1, clock_timestamp() + $7 * interval '1 microsecond')
			ON CONFLICT (org_id, user_id, project_id, kind, key) DO UPDATE SET
				node_id = excluded.node_id,
				epoch = CASE WHEN l.node_id = excluded.node_id AND l.expires_at > clock_timestamp()
					THEN l.epoch ELSE l.epoch + 1 END,
				expires_at = clock_timestamp() + $7 * interval '1 microsecond'
			WHERE l.node_id = excluded.node_id OR l.expires_at <= clock_timestamp()
			RETURNING `+leaseCols, args...))
		if err == nil {
			l.Live = true // just given for ttl, whatever a slow statement's own clock says
			return l, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return store.Lease{}, s.fail(ctx, "acquire lease", err)
		}
		held, err := s.GetLease(ctx, ref)
		if err != nil {
			return store.Lease{}, fmt.Errorf("postgres: acquire lease: %w", err)
		}
		if held.Live {
			return held, fmt.Errorf("postgres: acquire lease: %s %s is node %s's: %w", ref.Kind, ref.Key, held.NodeID, store.ErrLeaseHeld)
		}
	}
	return store.Lease{}, fmt.Errorf("postgres: acquire lease: %s %s changed hands during the acquisition: %w", ref.Kind, ref.Key, store.ErrLeaseHeld)
}

// RenewLeases pushes the expiry of nodeID's live leases (see store.LeaseStore).
func (s *Store) RenewLeases(ctx context.Context, nodeID string, ttl time.Duration) ([]store.Lease, error) {
	if err := store.CheckAcquire(nil, nodeID, ttl); err != nil {
		return nil, fmt.Errorf("postgres: renew leases: %w", err)
	}
	rows, err := s.pool.Query(ctx, `UPDATE leases SET expires_at = clock_timestamp() + $2 * interval '1 microsecond'
		WHERE node_id = $1 AND expires_at > clock_timestamp()
		RETURNING `+leaseCols, nodeID, micros(ttl))
	if err != nil {
		return nil, s.fail(ctx, "renew leases", err)
	}
	out, err := collectLeases(rows)
	if err != nil {
		return nil, s.fail(ctx, "renew leases", err)
	}
	for i := range out {
		out[i].Live = true
	}
	return out, nil
}

// ReleaseLease ends l now if it is still current (see store.LeaseStore). The
// row stays, expired, so the next owner's epoch follows l's.
func (s *Store) ReleaseLease(ctx context.Context, l store.Lease) error {
	_, err := s.pool.Exec(ctx, `UPDATE leases SET expires_at = clock_timestamp()
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND kind = $4 AND key = $5
		  AND node_id = $6 AND epoch = $7 AND expires_at > clock_timestamp()`,
		l.Scope.OrgID, l.Scope.UserID, l.Scope.ProjectID, l.Kind, l.Key, l.NodeID, l.Epoch)
	return s.fail(ctx, "release lease", err)
}

// GetLease returns ref's lease, live or not.
func (s *Store) GetLease(ctx context.Context, ref store.LeaseRef) (store.Lease, error) {
	l, err := scanLease(s.pool.QueryRow(ctx, `SELECT `+leaseCols+` FROM leases
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND kind = $4 AND key = $5`,
		ref.Scope.OrgID, ref.Scope.UserID, ref.Scope.ProjectID, ref.Kind, ref.Key))
	if err != nil {
		return store.Lease{}, s.fail(ctx, "get lease", err)
	}
	return l, nil
}

// ListScopeLeases returns the scope's live leases by kind and key.
func (s *Store) ListScopeLeases(ctx context.Context, scope store.Scope) ([]store.Lease, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+leaseCols+` FROM leases
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND expires_at > clock_timestamp()
		ORDER BY kind, key`, scope.OrgID, scope.UserID, scope.ProjectID)
	if err != nil {
		return nil, s.fail(ctx, "list scope leases", err)
	}
	out, err := collectLeases(rows)
	return out, s.fail(ctx, "list scope leases", err)
}

// HeartbeatNode records n as live for ttl (see store.LeaseStore). A zero
// StartedAt is the first heartbeat's time.
func (s *Store) HeartbeatNode(ctx context.Context, n store.Node, ttl time.Duration) error {
	if err := store.CheckAcquire(nil, n.ID, ttl); err != nil {
		return fmt.Errorf("postgres: heartbeat node: %w", err)
	}
	var started *time.Time
	if !n.StartedAt.IsZero() {
		started = &n.StartedAt
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO cluster_nodes AS c
			(node_id, addr, version, started_at, heartbeat_at, expires_at, draining, load)
		VALUES ($1, $2, $3, COALESCE($4, clock_timestamp()), clock_timestamp(),
			clock_timestamp() + $5 * interval '1 microsecond', $6, $7)
		ON CONFLICT (node_id) DO UPDATE SET addr = excluded.addr, version = excluded.version,
			started_at = COALESCE($4, c.started_at), heartbeat_at = excluded.heartbeat_at,
			expires_at = excluded.expires_at, draining = excluded.draining, load = excluded.load`,
		n.ID, n.Addr, n.Version, started, micros(ttl), n.Draining, n.Load)
	return s.fail(ctx, "heartbeat node", err)
}

// ListNodes returns the nodes heard from within forgetAfter, live first.
func (s *Store) ListNodes(ctx context.Context, forgetAfter time.Duration) ([]store.Node, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.node_id, c.addr, c.version, c.started_at, c.heartbeat_at, c.draining,
			c.load, c.expires_at > clock_timestamp() AS live,
			(SELECT count(*) FROM leases l WHERE l.node_id = c.node_id AND l.expires_at > clock_timestamp())
		FROM cluster_nodes c
		WHERE c.heartbeat_at > clock_timestamp() - $1 * interval '1 microsecond'
		ORDER BY live DESC, c.node_id`, micros(forgetAfter))
	if err != nil {
		return nil, s.fail(ctx, "list nodes", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Node, error) {
		var n store.Node
		err := row.Scan(&n.ID, &n.Addr, &n.Version, &n.StartedAt, &n.HeartbeatAt, &n.Draining, &n.Load, &n.Live, &n.Leases)
		n.StartedAt, n.HeartbeatAt = utc(n.StartedAt), utc(n.HeartbeatAt)
		return n, err
	})
	if err != nil {
		return nil, s.fail(ctx, "list nodes", err)
	}
	if out == nil {
		out = []store.Node{}
	}
	return out, nil
}

// RemoveNode forgets nodeID and releases its live leases, in one statement.
func (s *Store) RemoveNode(ctx context.Context, nodeID string) error {
	_, err := s.pool.Exec(ctx, `WITH n AS (DELETE FROM cluster_nodes WHERE node_id = $1)
		UPDATE leases SET expires_at = clock_timestamp() WHERE node_id = $1 AND expires_at > clock_timestamp()`, nodeID)
	return s.fail(ctx, "remove node", err)
}

// ListUnownedWork returns the work no other node holds a live lease on (see
// store.LeaseStore), in one snapshot.
func (s *Store) ListUnownedWork(ctx context.Context, nodeID string) ([]store.AgentRef, []store.Run, error) {
	// notOwned is true when the lease of (scope, kind, key) is not another
	// node's live one.
	const notOwned = `NOT EXISTS (SELECT 1 FROM leases l
		WHERE l.org_id = w.org_id AND l.user_id = w.user_id AND l.project_id = w.project_id
		  AND l.kind = $2 AND l.key = w.key AND l.node_id <> $1 AND l.expires_at > clock_timestamp())`
	b := &pgx.Batch{}
	b.Queue(`SELECT org_id, user_id, project_id, key FROM (
			SELECT org_id, user_id, project_id, agent_id AS key FROM messages WHERE status = 'unread' AND agent_id <> ''
			UNION
			SELECT org_id, user_id, project_id, agent_id FROM runs WHERE status = 'running' AND agent_id <> '') w
		WHERE `+notOwned+`
		ORDER BY 1, 2, 3, 4`, nodeID, store.LeaseAgent)
	b.Queue(`SELECT `+runCols+` FROM (SELECT *, group_id AS key FROM runs WHERE status = 'running' AND agent_id = '') w
		WHERE `+notOwned+`
		ORDER BY org_id, user_id, project_id, created_at, run_id`, nodeID, store.LeaseGroup)
	var agents []store.AgentRef
	var runs []store.Run
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		rows, err := br.Query()
		if err != nil {
			return err
		}
		agents, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AgentRef, error) {
			var r store.AgentRef
			err := row.Scan(&r.Scope.OrgID, &r.Scope.UserID, &r.Scope.ProjectID, &r.AgentID)
			return r, err
		})
		if err != nil {
			return err
		}
		rows, err = br.Query()
		if err != nil {
			return err
		}
		runs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Run, error) { return scanRun(row) })
		if err != nil {
			return err
		}
		return br.Close()
	})
	if err != nil {
		return nil, nil, s.fail(ctx, "list unowned work", err)
	}
	if agents == nil {
		agents = []store.AgentRef{}
	}
	if runs == nil {
		runs = []store.Run{}
	}
	return agents, runs, nil
}

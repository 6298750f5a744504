package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openintern/openintern/store"
)

var _ store.LeaseStore = (*Store)(nil)

// SQLite serves one daemon per file (see Open's lock), so its leases only
// ever change hands between that daemon's lives; they follow the contract all
// the same, on the process's wall clock (the database's clock here: SQLite
// has no other), not the store's settable clock.

func leaseNow() int64 { return time.Now().UnixMicro() }

const leaseCols = `org_id, user_id, project_id, kind, key, node_id, epoch, expires_at`

func scanLease(row scanner, now int64) (store.Lease, error) {
	var l store.Lease
	var exp int64
	err := row.Scan(&l.Scope.OrgID, &l.Scope.UserID, &l.Scope.ProjectID, &l.Kind, &l.Key, &l.NodeID, &l.Epoch, &exp)
	l.ExpiresAt, l.Live = fromMicros(exp), exp > now
	return l, err
}

// checkFence fails with store.ErrFenced unless ctx carries no fence or its
// lease is still current. Called first in a write transaction: the single
// writer orders it before or after any takeover, never beside one.
func checkFence(ctx context.Context, tx *sql.Tx) error {
	f, ok := store.FenceOf(ctx)
	if !ok {
		return nil
	}
	l, err := scanLease(tx.QueryRowContext(ctx, `SELECT `+leaseCols+` FROM leases
		WHERE org_id = ? AND user_id = ? AND project_id = ? AND kind = ? AND key = ?`,
		f.Scope.OrgID, f.Scope.UserID, f.Scope.ProjectID, f.Kind, f.Key), leaseNow())
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("no lease on %s %s: %w", f.Kind, f.Key, store.ErrFenced)
	case err != nil:
		return err
	case l.NodeID != f.NodeID || l.Epoch != f.Epoch:
		return fmt.Errorf("the lease on %s %s is node %s's epoch %d, not node %s's epoch %d: %w",
			f.Kind, f.Key, l.NodeID, l.Epoch, f.NodeID, f.Epoch, store.ErrFenced)
	case !l.Live:
		return fmt.Errorf("the lease on %s %s (node %s, epoch %d) has expired: %w", f.Kind, f.Key, f.NodeID, f.Epoch, store.ErrFenced)
	}
	return nil
}

// fencedTx is writeTx for the writes of a turn or a group step: it checks
// ctx's fence (store.WithFence) in the transaction, before fn.
func (s *Store) fencedTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		if err := checkFence(ctx, tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

// AcquireLease gives ref to nodeID (see store.LeaseStore).
func (s *Store) AcquireLease(ctx context.Context, ref store.LeaseRef, nodeID string, ttl time.Duration) (store.Lease, error) {
	if err := store.CheckAcquire(&ref, nodeID, ttl); err != nil {
		return store.Lease{}, fmt.Errorf("sqlite: acquire lease: %w", err)
	}
	var out store.Lease
	var held bool
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		now := leaseNow()
		cur, err := scanLease(tx.QueryRowContext(ctx, `SELECT `+leaseCols+` FROM leases
			WHERE org_id = ? AND user_id = ? AND project_id = ? AND kind = ? AND key = ?`,
			ref.Scope.OrgID, ref.Scope.UserID, ref.Scope.ProjectID, ref.Kind, ref.Key), now)
		epoch := int64(1)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case cur.Live && cur.NodeID != nodeID:
			out, held = cur, true
			return nil
		case cur.Live:
			epoch = cur.Epoch // renewed by its holder
		default:
			epoch = cur.Epoch + 1 // expired or released: changes hands, even back to the same node
		}
		exp := now + ttl.Microseconds()
		if _, err := tx.ExecContext(ctx, `INSERT INTO leases (`+leaseCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (org_id, user_id, project_id, kind, key) DO UPDATE
				SET node_id = excluded.node_id, epoch = excluded.epoch, expires_at = excluded.expires_at`,
			ref.Scope.OrgID, ref.Scope.UserID, ref.Scope.ProjectID, ref.Kind, ref.Key, nodeID, epoch, exp); err != nil {
			return err
		}
		out = store.Lease{LeaseRef: ref, NodeID: nodeID, Epoch: epoch, ExpiresAt: fromMicros(exp), Live: true}
		return nil
	})
	if err != nil {
		return store.Lease{}, fail("acquire lease", err)
	}
	if held {
		return out, fmt.Errorf("sqlite: acquire lease: %s %s is node %s's: %w", ref.Kind, ref.Key, out.NodeID, store.ErrLeaseHeld)
	}
	return out, nil
}

// RenewLeases pushes the expiry of nodeID's live leases (see store.LeaseStore).
func (s *Store) RenewLeases(ctx context.Context, nodeID string, ttl time.Duration) ([]store.Lease, error) {
	if err := store.CheckAcquire(nil, nodeID, ttl); err != nil {
		return nil, fmt.Errorf("sqlite: renew leases: %w", err)
	}
	out := []store.Lease{}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		now := leaseNow()
		return queryRows(ctx, tx, `UPDATE leases SET expires_at = ? WHERE node_id = ? AND expires_at > ?
			RETURNING `+leaseCols, []any{now + ttl.Microseconds(), nodeID, now}, func(rows *sql.Rows) error {
			l, err := scanLease(rows, now)
			out = append(out, l)
			return err
		})
	})
	if err != nil {
		return nil, fail("renew leases", err)
	}
	return out, nil
}

// ReleaseLease ends l now if it is still current (see store.LeaseStore).
func (s *Store) ReleaseLease(ctx context.Context, l store.Lease) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		now := leaseNow()
		_, err := tx.ExecContext(ctx, `UPDATE leases SET expires_at = ?
			WHERE org_id = ? AND user_id = ? AND project_id = ? AND kind = ? AND key = ?
			  AND node_id = ? AND epoch = ? AND expires_at > ?`,
			now, l.Scope.OrgID, l.Scope.UserID, l.Scope.ProjectID, l.Kind, l.Key, l.NodeID, l.Epoch, now)
		return err
	})
	return fail("release lease", err)
}

// GetLease returns ref's lease, live or not.
func (s *Store) GetLease(ctx context.Context, ref store.LeaseRef) (store.Lease, error) {
	l, err := scanLease(s.r.QueryRowContext(ctx, `SELECT `+leaseCols+` FROM leases
		WHERE org_id = ? AND user_id = ? AND project_id = ? AND kind = ? AND key = ?`,
		ref.Scope.OrgID, ref.Scope.UserID, ref.Scope.ProjectID, ref.Kind, ref.Key), leaseNow())
	if err != nil {
		return store.Lease{}, fail("get lease", err)
	}
	return l, nil
}

// ListScopeLeases returns the scope's live leases by kind and key.
func (s *Store) ListScopeLeases(ctx context.Context, scope store.Scope) ([]store.Lease, error) {
	out := []store.Lease{}
	now := leaseNow()
	err := queryRows(ctx, s.r, `SELECT `+leaseCols+` FROM leases WHERE `+scopeCond+` AND expires_at > ?
		ORDER BY kind, key`, scopeArgs(scope, now), func(rows *sql.Rows) error {
		l, err := scanLease(rows, now)
		out = append(out, l)
		return err
	})
	if err != nil {
		return nil, fail("list scope leases", err)
	}
	return out, nil
}

// HeartbeatNode records n as live for ttl (see store.LeaseStore). A zero
// StartedAt is the first heartbeat's time.
func (s *Store) HeartbeatNode(ctx context.Context, n store.Node, ttl time.Duration) error {
	if err := store.CheckAcquire(nil, n.ID, ttl); err != nil {
		return fmt.Errorf("sqlite: heartbeat node: %w", err)
	}
	var started sql.NullInt64
	if !n.StartedAt.IsZero() {
		started = sql.NullInt64{Int64: micros(n.StartedAt), Valid: true}
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		now := leaseNow()
		_, err := tx.ExecContext(ctx, `INSERT INTO cluster_nodes
				(node_id, addr, version, started_at, heartbeat_at, expires_at, draining, load)
			VALUES (?1, ?2, ?3, COALESCE(?4, ?5), ?5, ?6, ?7, ?8)
			ON CONFLICT (node_id) DO UPDATE SET addr = excluded.addr, version = excluded.version,
				started_at = COALESCE(?4, started_at), heartbeat_at = excluded.heartbeat_at,
				expires_at = excluded.expires_at, draining = excluded.draining, load = excluded.load`,
			n.ID, n.Addr, n.Version, started, now, now+ttl.Microseconds(), n.Draining, n.Load)
		return err
	})
	return fail("heartbeat node", err)
}

// ListNodes returns the nodes heard from within forgetAfter, live first.
func (s *Store) ListNodes(ctx context.Context, forgetAfter time.Duration) ([]store.Node, error) {
	out := []store.Node{}
	now := leaseNow()
	err := queryRows(ctx, s.r, `SELECT c.node_id, c.addr, c.version, c.started_at, c.heartbeat_at, c.draining,
			c.load, c.expires_at > ?1 AS live,
			(SELECT count(*) FROM leases l WHERE l.node_id = c.node_id AND l.expires_at > ?1)
		FROM cluster_nodes c
		WHERE c.heartbeat_at > ?2
		ORDER BY live DESC, c.node_id`, []any{now, now - forgetAfter.Microseconds()}, func(rows *sql.Rows) error {
		var n store.Node
		var started, beat int64
		err := rows.Scan(&n.ID, &n.Addr, &n.Version, &started, &beat, &n.Draining, &n.Load, &n.Live, &n.Leases)
		n.StartedAt, n.HeartbeatAt = fromMicros(started), fromMicros(beat)
		out = append(out, n)
		return err
	})
	if err != nil {
		return nil, fail("list nodes", err)
	}
	return out, nil
}

// RemoveNode forgets nodeID and releases its live leases, in one transaction.
func (s *Store) RemoveNode(ctx context.Context, nodeID string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		now := leaseNow()
		if _, err := tx.ExecContext(ctx, `DELETE FROM cluster_nodes WHERE node_id = ?`, nodeID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE leases SET expires_at = ? WHERE node_id = ? AND expires_at > ?`, now, nodeID, now)
		return err
	})
	return fail("remove node", err)
}

// ListUnownedWork returns the work no other node holds a live lease on (see
// store.LeaseStore), in one snapshot.
func (s *Store) ListUnownedWork(ctx context.Context, nodeID string) ([]store.AgentRef, []store.Run, error) {
	const notOwned = `NOT EXISTS (SELECT 1 FROM leases l
		WHERE l.org_id = w.org_id AND l.user_id = w.user_id AND l.project_id = w.project_id
		  AND l.kind = ?2 AND l.key = w.key AND l.node_id <> ?1 AND l.expires_at > ?3)`
	agents, runs := []store.AgentRef{}, []store.Run{}
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		now := leaseNow()
		agents, runs = agents[:0], runs[:0]
		err := queryRows(ctx, tx, `SELECT org_id, user_id, project_id, key FROM (
				SELECT org_id, user_id, project_id, agent_id AS key FROM messages WHERE status = 'unread' AND agent_id <> ''
				UNION
				SELECT org_id, user_id, project_id, agent_id FROM runs WHERE status = 'running' AND agent_id <> '') w
			WHERE `+notOwned+`
			ORDER BY 1, 2, 3, 4`, []any{nodeID, store.LeaseAgent, now}, func(rows *sql.Rows) error {
			var r store.AgentRef
			err := rows.Scan(&r.Scope.OrgID, &r.Scope.UserID, &r.Scope.ProjectID, &r.AgentID)
			agents = append(agents, r)
			return err
		})
		if err != nil {
			return err
		}
		return queryRows(ctx, tx, `SELECT `+runCols+` FROM (
				SELECT *, group_id AS key FROM runs WHERE status = 'running' AND agent_id = '') w
			WHERE `+notOwned+`
			ORDER BY org_id, user_id, project_id, created_at, run_id`, []any{nodeID, store.LeaseGroup, now},
			func(rows *sql.Rows) error {
				r, err := scanRun(rows)
				runs = append(runs, r)
				return err
			})
	})
	if err != nil {
		return nil, nil, fail("list unowned work", err)
	}
	return agents, runs, nil
}

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

var _ store.ApprovalStore = (*Store)(nil)

const approvalCols = `org_id, user_id, project_id, approval_id, run_id, agent_id, step, call_index, call_id,
	call_key, tool, arguments, args_hash, reason, rule, status, decided_by, decision_reason, created_at,
	expires_at, decided_at`

func scanApproval(row pgx.Row) (store.Approval, error) {
	var a store.Approval
	err := row.Scan(&a.Scope.OrgID, &a.Scope.UserID, &a.Scope.ProjectID, &a.ID, &a.RunID, &a.AgentID, &a.Step,
		&a.CallIndex, &a.CallID, &a.CallKey, &a.Tool, &a.Arguments, &a.ArgsHash, &a.Reason, &a.Rule, &a.Status,
		&a.DecidedBy, &a.DecisionReason, &a.CreatedAt, &a.ExpiresAt, &a.DecidedAt)
	if err != nil {
		return store.Approval{}, err
	}
	a.CreatedAt, a.ExpiresAt, a.DecidedAt = utc(a.CreatedAt), utc(a.ExpiresAt), utcPtr(a.DecidedAt)
	return a, nil
}

// lockScopeEvents takes the scope's event lock for the rest of tx (see
// queryRowWithEvents): first, before any row lock.
func lockScopeEvents(ctx context.Context, tx pgx.Tx, scope store.Scope) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, scopeEventLockKey(scope))
	return err
}

// lockScopeEventsFenced takes the scope's event lock and checks ctx's fence
// (store.WithFence), if any, in one round trip.
func lockScopeEventsFenced(ctx context.Context, tx pgx.Tx, scope store.Scope) error {
	b := &pgx.Batch{}
	queuePrelude(ctx, b, false, []int64{scopeEventLockKey(scope)})
	return tx.SendBatch(ctx, b).Close()
}

// insertEventsTx stores events in tx, which holds their scope's event lock,
// and gives them their ids.
func insertEventsTx(ctx context.Context, tx pgx.Tx, events []store.Event) error {
	if len(events) == 0 {
		return nil
	}
	var ids []int64
	err := tx.QueryRow(ctx, `WITH ins AS (
			INSERT INTO events (org_id, user_id, project_id, run_id, agent_id, group_id, step_id, type, ts, payload)
			SELECT org_id, user_id, project_id, run_id, agent_id, group_id, step_id, type, ts, payload::json
			FROM `+unnestEvents(1)+` ORDER BY ord
			RETURNING id)
		SELECT ARRAY(SELECT id FROM ins ORDER BY id)`, newEventArrays(events).args()...).Scan(&ids)
	if err != nil {
		return err
	}
	return assignIDs(events, ids)
}

// WaitForApproval stores the approval (unless the call has one), the
// checkpoint and the events, and puts the run in waiting_approval, in one
// transaction (see store.ApprovalStore).
func (s *Store) WaitForApproval(ctx context.Context, scope store.Scope, a store.Approval, cp *store.Checkpoint, events []store.Event) (store.Approval, []store.Event, error) {
	a.Scope, a.Status = scope, store.ApprovalPending
	if err := store.CheckNewApproval(a); err != nil {
		return store.Approval{}, nil, fmt.Errorf("postgres: wait for approval: %w", err)
	}
	out, err := store.RunEvents(scope, a.RunID, events, s.now())
	if err != nil {
		return store.Approval{}, nil, fmt.Errorf("postgres: wait for approval: %w", err)
	}
	if cp != nil && len(cp.State) > 0 && !json.Valid(cp.State) {
		return store.Approval{}, nil, errors.New("postgres: wait for approval: checkpoint state is not valid JSON")
	}
	ts := s.now()
	var stored store.Approval
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockScopeEventsFenced(ctx, tx, scope); err != nil {
			return err
		}
		args := []any{scope.OrgID, scope.UserID, scope.ProjectID, a.RunID}
		var agentID, groupID string
		err := tx.QueryRow(ctx, `UPDATE runs SET status = 'waiting_approval'
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $4 AND status = 'running'
			RETURNING agent_id, group_id`, args...).Scan(&agentID, &groupID)
		if errors.Is(err, pgx.ErrNoRows) {
			r, err := s.getRun(ctx, tx, scope, a.RunID)
			if err != nil {
				return err
			}
			return fmt.Errorf("run is %s, not running: %w", r.Status, store.ErrConflict)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO approvals (`+approvalCols+`)
			VALUES ($1, $2, $3, $5, $4, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'pending', '', '', $16, $17, NULL)
			ON CONFLICT (org_id, user_id, project_id, run_id, call_key) DO NOTHING`,
			append(args, a.ID, agentID, a.Step, a.CallIndex, a.CallID, a.CallKey, a.Tool, a.Arguments, a.ArgsHash,
				a.Reason, a.Rule, ts, a.ExpiresAt)...); err != nil {
			return err
		}
		stored, err = scanApproval(tx.QueryRow(ctx, `SELECT `+approvalCols+` FROM approvals
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $4 AND call_key = $5`,
			append(args, a.CallKey)...))
		if err != nil {
			return err
		}
		if stored.Status != store.ApprovalPending {
			// Decided already: waiting for it would wait for ever.
			return fmt.Errorf("the call's approval is %s: %w", stored.Status, store.ErrConflict)
		}
		if cp != nil {
			if _, err := tx.Exec(ctx, `WITH u AS (UPDATE runs SET steps = $5
					WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $4)
				INSERT INTO checkpoints (org_id, user_id, project_id, run_id, step, state, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6::json, $7)
				ON CONFLICT (org_id, user_id, project_id, run_id) DO UPDATE
					SET step = excluded.step, state = excluded.state, updated_at = excluded.updated_at`,
				append(args, cp.Step, payloadArg(cp.State), ts)...); err != nil {
				return err
			}
		}
		store.FillFromRun(out, agentID, groupID)
		return insertEventsTx(ctx, tx, out)
	})
	if err != nil {
		return stored, nil, s.fail(ctx, "wait for approval", err)
	}
	return stored, out, nil
}

// GetApproval returns one approval.
func (s *Store) GetApproval(ctx context.Context, scope store.Scope, id string) (store.Approval, error) {
	a, err := scanApproval(s.pool.QueryRow(ctx, `SELECT `+approvalCols+` FROM approvals
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND approval_id = $4`,
		scope.OrgID, scope.UserID, scope.ProjectID, id))
	if err != nil {
		return store.Approval{}, s.fail(ctx, "get approval", err)
	}
	return a, nil
}

// GetApprovalForCall returns the approval of a run's call.
func (s *Store) GetApprovalForCall(ctx context.Context, scope store.Scope, runID, callKey string) (store.Approval, error) {
	a, err := scanApproval(s.pool.QueryRow(ctx, `SELECT `+approvalCols+` FROM approvals
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $4 AND call_key = $5`,
		scope.OrgID, scope.UserID, scope.ProjectID, runID, callKey))
	if err != nil {
		return store.Approval{}, s.fail(ctx, "get approval for call", err)
	}
	return a, nil
}

// ListApprovals returns a page of the scope's approvals, newest first, and how many match.
func (s *Store) ListApprovals(ctx context.Context, scope store.Scope, filter store.ApprovalFilter, page store.Page) ([]store.Approval, int, error) {
	limit, offset := store.PageBounds(page)
	cond := `org_id = $1 AND user_id = $2 AND project_id = $3`
	args := []any{scope.OrgID, scope.UserID, scope.ProjectID}
	for _, f := range []struct{ col, v string }{{"status", filter.Status}, {"agent_id", filter.AgentID}, {"run_id", filter.RunID}} {
		if f.v != "" {
			args = append(args, f.v)
			cond += fmt.Sprintf(" AND %s = $%d", f.col, len(args))
		}
	}
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM approvals WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, s.fail(ctx, "list approvals", err)
	}
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM approvals WHERE %s
		ORDER BY created_at DESC, approval_id DESC LIMIT $%d OFFSET $%d`, approvalCols, cond, len(args)+1, len(args)+2),
		append(args, limit, offset)...)
	if err != nil {
		return nil, 0, s.fail(ctx, "list approvals", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Approval, error) { return scanApproval(row) })
	if err != nil {
		return nil, 0, s.fail(ctx, "list approvals", err)
	}
	if list == nil {
		list = []store.Approval{}
	}
	return list, total, nil
}

// ResolveApproval decides a pending approval and resumes its run in one
// transaction (see store.ApprovalStore). The row lock makes concurrent
// resolvers take turns; the later one finds it decided.
func (s *Store) ResolveApproval(ctx context.Context, scope store.Scope, id string, d store.ApprovalDecision) (store.Approval, []store.Event, error) {
	if err := store.CheckApprovalDecision(d); err != nil {
		return store.Approval{}, nil, fmt.Errorf("postgres: resolve approval: %w", err)
	}
	var (
		a       store.Approval
		events  []store.Event
		expired bool
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockScopeEvents(ctx, tx, scope); err != nil {
			return err
		}
		var err error
		a, err = scanApproval(tx.QueryRow(ctx, `SELECT `+approvalCols+` FROM approvals
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND approval_id = $4 FOR UPDATE`,
			scope.OrgID, scope.UserID, scope.ProjectID, id))
		if err != nil {
			return err
		}
		if a.Status != store.ApprovalPending {
			return fmt.Errorf("approval is %s: %w", a.Status, store.ErrConflict)
		}
		ts := s.now()
		d, expired = store.DecideApproval(a, d, ts)
		a.Status, a.DecidedBy, a.DecisionReason, a.DecidedAt = d.Status, d.By, d.Reason, &ts
		args := []any{scope.OrgID, scope.UserID, scope.ProjectID, id, a.RunID, d.Status, d.By, d.Reason, ts}
		if _, err := tx.Exec(ctx, `WITH r AS (
				UPDATE runs SET status = 'running'
				WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $5 AND status = 'waiting_approval')
			UPDATE approvals SET status = $6, decided_by = $7, decision_reason = $8, decided_at = $9
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND approval_id = $4`, args...); err != nil {
			return err
		}
		ev, err := store.NormaliseEvent(store.ApprovalResolvedEvent(a, ts), ts)
		if err != nil {
			return err
		}
		events = []store.Event{ev}
		return insertEventsTx(ctx, tx, events)
	})
	if err != nil {
		return a, nil, s.fail(ctx, "resolve approval", err)
	}
	if expired {
		return a, events, fmt.Errorf("postgres: resolve approval: %w", store.ErrApprovalExpired)
	}
	return a, events, nil
}

// DueApprovals returns pending approvals past their expiry, in every scope.
func (s *Store) DueApprovals(ctx context.Context, now time.Time, limit int) ([]store.Approval, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+approvalCols+` FROM approvals
		WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2`, now, limit)
	if err != nil {
		return nil, s.fail(ctx, "due approvals", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Approval, error) { return scanApproval(row) })
	if err != nil {
		return nil, s.fail(ctx, "due approvals", err)
	}
	return list, nil
}

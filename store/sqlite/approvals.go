package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/openintern/openintern/store"
)

var _ store.ApprovalStore = (*Store)(nil)

const approvalCols = `org_id, user_id, project_id, approval_id, run_id, agent_id, step, call_index, call_id,
	call_key, tool, arguments, args_hash, reason, rule, status, decided_by, decision_reason, created_at,
	expires_at, decided_at`

func scanApproval(row scanner) (store.Approval, error) {
	var a store.Approval
	var created, expires int64
	var decided sql.NullInt64
	err := row.Scan(&a.Scope.OrgID, &a.Scope.UserID, &a.Scope.ProjectID, &a.ID, &a.RunID, &a.AgentID, &a.Step,
		&a.CallIndex, &a.CallID, &a.CallKey, &a.Tool, &a.Arguments, &a.ArgsHash, &a.Reason, &a.Rule, &a.Status,
		&a.DecidedBy, &a.DecisionReason, &created, &expires, &decided)
	if err != nil {
		return store.Approval{}, err
	}
	a.CreatedAt, a.ExpiresAt, a.DecidedAt = fromMicros(created), fromMicros(expires), fromNullMicros(decided)
	return a, nil
}

// WaitForApproval stores the approval (unless the call has one), the
// checkpoint and the events, and puts the run in waiting_approval, in one
// transaction (see store.ApprovalStore).
func (s *Store) WaitForApproval(ctx context.Context, scope store.Scope, a store.Approval, cp *store.Checkpoint, events []store.Event) (store.Approval, []store.Event, error) {
	a.Scope, a.Status = scope, store.ApprovalPending
	if err := store.CheckNewApproval(a); err != nil {
		return store.Approval{}, nil, fmt.Errorf("sqlite: wait for approval: %w", err)
	}
	out, err := store.RunEvents(scope, a.RunID, events, s.now())
	if err != nil {
		return store.Approval{}, nil, fmt.Errorf("sqlite: wait for approval: %w", err)
	}
	var state sql.NullString
	if cp != nil && len(cp.State) > 0 {
		if !json.Valid(cp.State) {
			return store.Approval{}, nil, errors.New("sqlite: wait for approval: checkpoint state is not valid JSON")
		}
		state = nullJSON(cp.State)
	}
	ts := s.now()
	var stored store.Approval
	err = s.fencedTx(ctx, func(tx *sql.Tx) error {
		r, err := getRun(ctx, tx, scope, a.RunID)
		if err != nil {
			return err
		}
		if r.Status != store.RunRunning {
			return fmt.Errorf("run is %s, not running: %w", r.Status, store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO approvals (`+approvalCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', '', '', ?, ?, NULL)
			ON CONFLICT (org_id, user_id, project_id, run_id, call_key) DO NOTHING`,
			scopeArgs(scope, a.ID, a.RunID, r.AgentID, a.Step, a.CallIndex, a.CallID, a.CallKey, a.Tool, a.Arguments,
				a.ArgsHash, a.Reason, a.Rule, micros(ts), micros(a.ExpiresAt))...); err != nil {
			return err
		}
		stored, err = scanApproval(tx.QueryRowContext(ctx, `SELECT `+approvalCols+` FROM approvals
			WHERE `+scopeCond+` AND run_id = ? AND call_key = ?`, scopeArgs(scope, a.RunID, a.CallKey)...))
		if err != nil {
			return err
		}
		if stored.Status != store.ApprovalPending {
			// Decided already: waiting for it would wait for ever.
			return fmt.Errorf("the call's approval is %s: %w", stored.Status, store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = 'waiting_approval' WHERE `+scopeCond+` AND run_id = ?`,
			scopeArgs(scope, a.RunID)...); err != nil {
			return err
		}
		if cp != nil {
			if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (org_id, user_id, project_id, run_id, step, state, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (org_id, user_id, project_id, run_id) DO UPDATE
					SET step = excluded.step, state = excluded.state, updated_at = excluded.updated_at`,
				scopeArgs(scope, a.RunID, cp.Step, state, micros(ts))...); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE runs SET steps = ? WHERE `+scopeCond+` AND run_id = ?`,
				append([]any{cp.Step}, scopeArgs(scope, a.RunID)...)...); err != nil {
				return err
			}
		}
		store.FillFromRun(out, r.AgentID, r.GroupID)
		return insertEvents(ctx, tx, out, func(i int, id int64) { out[i].ID = id })
	})
	if err != nil {
		return stored, nil, fail("wait for approval", err)
	}
	return stored, out, nil
}

// GetApproval returns one approval.
func (s *Store) GetApproval(ctx context.Context, scope store.Scope, id string) (store.Approval, error) {
	a, err := scanApproval(s.r.QueryRowContext(ctx, `SELECT `+approvalCols+` FROM approvals
		WHERE `+scopeCond+` AND approval_id = ?`, scopeArgs(scope, id)...))
	if err != nil {
		return store.Approval{}, fail("get approval", err)
	}
	return a, nil
}

// GetApprovalForCall returns the approval of a run's call.
func (s *Store) GetApprovalForCall(ctx context.Context, scope store.Scope, runID, callKey string) (store.Approval, error) {
	a, err := scanApproval(s.r.QueryRowContext(ctx, `SELECT `+approvalCols+` FROM approvals
		WHERE `+scopeCond+` AND run_id = ? AND call_key = ?`, scopeArgs(scope, runID, callKey)...))
	if err != nil {
		return store.Approval{}, fail("get approval for call", err)
	}
	return a, nil
}

// ListApprovals returns a page of the scope's approvals, newest first, and how many match.
func (s *Store) ListApprovals(ctx context.Context, scope store.Scope, filter store.ApprovalFilter, page store.Page) ([]store.Approval, int, error) {
	limit, offset := store.PageBounds(page)
	cond, args := scopeCond, scopeArgs(scope)
	for _, f := range []struct{ col, v string }{{"status", filter.Status}, {"agent_id", filter.AgentID}, {"run_id", filter.RunID}} {
		if f.v != "" {
			cond += " AND " + f.col + " = ?"
			args = append(args, f.v)
		}
	}
	var total int
	list := []store.Approval{}
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM approvals WHERE `+cond, args...).Scan(&total); err != nil {
			return err
		}
		return queryRows(ctx, tx, `SELECT `+approvalCols+` FROM approvals WHERE `+cond+`
			ORDER BY created_at DESC, approval_id DESC LIMIT ? OFFSET ?`, append(append([]any{}, args...), limit, offset),
			func(rows *sql.Rows) error {
				a, err := scanApproval(rows)
				list = append(list, a)
				return err
			})
	})
	if err != nil {
		return nil, 0, fail("list approvals", err)
	}
	return list, total, nil
}

// ResolveApproval decides a pending approval and resumes its run in one
// write transaction (see store.ApprovalStore); the single writer orders
// concurrent resolvers, and the later one finds it decided.
func (s *Store) ResolveApproval(ctx context.Context, scope store.Scope, id string, d store.ApprovalDecision) (store.Approval, []store.Event, error) {
	if err := store.CheckApprovalDecision(d); err != nil {
		return store.Approval{}, nil, fmt.Errorf("sqlite: resolve approval: %w", err)
	}
	var (
		a       store.Approval
		events  []store.Event
		expired bool
	)
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		a, err = scanApproval(tx.QueryRowContext(ctx, `SELECT `+approvalCols+` FROM approvals
			WHERE `+scopeCond+` AND approval_id = ?`, scopeArgs(scope, id)...))
		if err != nil {
			return err
		}
		if a.Status != store.ApprovalPending {
			return fmt.Errorf("approval is %s: %w", a.Status, store.ErrConflict)
		}
		ts := s.now()
		d, expired = store.DecideApproval(a, d, ts)
		a.Status, a.DecidedBy, a.DecisionReason, a.DecidedAt = d.Status, d.By, d.Reason, &ts
		if _, err := tx.ExecContext(ctx, `UPDATE approvals SET status = ?, decided_by = ?, decision_reason = ?, decided_at = ?
			WHERE `+scopeCond+` AND approval_id = ?`,
			append([]any{d.Status, d.By, d.Reason, micros(ts)}, scopeArgs(scope, id)...)...); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = 'running'
			WHERE `+scopeCond+` AND run_id = ? AND status = 'waiting_approval'`, scopeArgs(scope, a.RunID)...); err != nil {
			return err
		}
		ev, err := store.NormaliseEvent(store.ApprovalResolvedEvent(a, ts), ts)
		if err != nil {
			return err
		}
		events = []store.Event{ev}
		return insertEvents(ctx, tx, events, func(i int, id int64) { events[i].ID = id })
	})
	if err != nil {
		return a, nil, fail("resolve approval", err)
	}
	if expired {
		return a, events, fmt.Errorf("sqlite: resolve approval: %w", store.ErrApprovalExpired)
	}
	return a, events, nil
}

// DueApprovals returns pending approvals past their expiry, in every scope.
func (s *Store) DueApprovals(ctx context.Context, now time.Time, limit int) ([]store.Approval, error) {
	if limit <= 0 {
		limit = 100
	}
	list := []store.Approval{}
	err := queryRows(ctx, s.r, `SELECT `+approvalCols+` FROM approvals
		WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at LIMIT ?`, []any{micros(now), limit},
		func(rows *sql.Rows) error {
			a, err := scanApproval(rows)
			list = append(list, a)
			return err
		})
	if err != nil {
		return nil, fail("due approvals", err)
	}
	return list, nil
}

package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

// AppendAudit stores the records in one transaction (one round trip: a batch).
func (s *Store) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	if err := store.CheckAuditRecords(recs); err != nil {
		return fmt.Errorf("postgres: append audit: %w", err)
	}
	if len(recs) == 0 {
		return nil
	}
	now := s.now()
	// A pipelined batch is one implicit transaction: all of recs or none,
	// in one round trip rather than three.
	err := func() error {
		var b pgx.Batch
		for _, r := range recs {
			at := r.Time
			if at.IsZero() {
				at = now
			}
			b.Queue(`INSERT INTO audit_log (created_at, org_id, user_id, project_id, actor, actor_name, via, action,
				target, args_hash, outcome, request_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
				at, r.Scope.OrgID, r.Scope.UserID, r.Scope.ProjectID, r.Actor, r.ActorName, r.Via, r.Action,
				r.Target, r.ArgsHash, r.Outcome, r.RequestID, r.Detail)
		}
		return s.pool.SendBatch(ctx, &b).Close()
	}()
	return s.fail(ctx, "append audit", err)
}

// ListAudit returns the scope's records the filter selects, newest first.
func (s *Store) ListAudit(ctx context.Context, scope store.Scope, f store.AuditFilter) ([]store.AuditRecord, error) {
	if err := store.CheckScope(scope); err != nil {
		return nil, fmt.Errorf("postgres: list audit: %w", err)
	}
	conds := []string{"org_id = $1 AND user_id = $2 AND project_id = $3"}
	args := []any{scope.OrgID, scope.UserID, scope.ProjectID}
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, cond+" $"+strconv.Itoa(len(args)))
	}
	if f.Actor != "" {
		add("actor =", f.Actor)
	}
	if f.Action != "" {
		add("action =", f.Action)
	}
	if f.Target != "" {
		add("target =", f.Target)
	}
	if !f.Since.IsZero() {
		add("created_at >=", f.Since)
	}
	if !f.Until.IsZero() {
		add("created_at <", f.Until)
	}
	if f.BeforeID > 0 {
		add("id <", f.BeforeID)
	}
	args = append(args, store.AuditLimit(f))
	rows, err := s.pool.Query(ctx, `SELECT id, created_at, org_id, user_id, project_id, actor, actor_name, via, action,
		target, args_hash, outcome, request_id, detail FROM audit_log WHERE `+strings.Join(conds, " AND ")+
		` ORDER BY id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, s.fail(ctx, "list audit", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditRecord, error) {
		var r store.AuditRecord
		err := row.Scan(&r.ID, &r.Time, &r.Scope.OrgID, &r.Scope.UserID, &r.Scope.ProjectID, &r.Actor, &r.ActorName,
			&r.Via, &r.Action, &r.Target, &r.ArgsHash, &r.Outcome, &r.RequestID, &r.Detail)
		r.Time = utc(r.Time)
		return r, err
	})
	if err != nil {
		return nil, s.fail(ctx, "list audit", err)
	}
	if out == nil {
		out = []store.AuditRecord{}
	}
	return out, nil
}

// DeleteAuditBefore deletes the records of every scope older than t, in
// batches of store.AuditDeleteBatch, each its own transaction, so that a
// deadline keeps what was deleted before it. The cut-off row opens the
// delete trigger for older records only; it is deleted again before each
// commit, so no other transaction ever sees it.
func (s *Store) DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO audit_log_retention (before) VALUES ($1)`, t); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `DELETE FROM audit_log WHERE id IN
				(SELECT id FROM audit_log WHERE created_at < $1 LIMIT $2)`, t, store.AuditDeleteBatch)
			if err != nil {
				return err
			}
			n = tag.RowsAffected()
			_, err = tx.Exec(ctx, `DELETE FROM audit_log_retention`)
			return err
		})
		if err != nil {
			return total, s.fail(ctx, "delete audit before", err)
		}
		total += n
		if n < store.AuditDeleteBatch {
			return total, nil
		}
	}
}

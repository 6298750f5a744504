package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/openintern/openintern/store"
)

const auditColumns = `id, created_at, org_id, user_id, project_id, actor, actor_name, via, action, target,
	args_hash, outcome, request_id, detail`

// AppendAudit stores the records in one transaction of the writer.
func (s *Store) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	if err := store.CheckAuditRecords(recs); err != nil {
		return fmt.Errorf("sqlite: append audit: %w", err)
	}
	if len(recs) == 0 {
		return nil
	}
	now := s.now()
	err := s.writeTx(ctx, func(tx *sql.Tx) error { return insertAudit(ctx, tx, recs, now) })
	return fail("append audit", err)
}

// insertAudit stores recs in tx; a zero Time is now.
func insertAudit(ctx context.Context, tx *sql.Tx, recs []store.AuditRecord, now time.Time) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit_log (created_at, org_id, user_id, project_id, actor,
		actor_name, via, action, target, args_hash, outcome, request_id, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer func() { _ = stmt.Close() }()
	for _, r := range recs {
		at := r.Time
		if at.IsZero() {
			at = now
		}
		if _, err := stmt.ExecContext(ctx, micros(at), r.Scope.OrgID, r.Scope.UserID, r.Scope.ProjectID, r.Actor,
			r.ActorName, r.Via, r.Action, r.Target, r.ArgsHash, r.Outcome, r.RequestID, r.Detail); err != nil {
			return err
		}
	}
	return nil
}

// ListAudit returns the scope's records the filter selects, newest first.
func (s *Store) ListAudit(ctx context.Context, scope store.Scope, f store.AuditFilter) ([]store.AuditRecord, error) {
	if err := store.CheckScope(scope); err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	conds := []string{scopeCond}
	args := scopeArgs(scope)
	for _, c := range []struct {
		col, v string
	}{{"actor", f.Actor}, {"action", f.Action}, {"target", f.Target}} {
		if c.v != "" {
			conds = append(conds, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if !f.Since.IsZero() {
		conds = append(conds, "created_at >= ?")
		args = append(args, micros(f.Since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "created_at < ?")
		args = append(args, micros(f.Until))
	}
	if f.BeforeID > 0 {
		conds = append(conds, "id < ?")
		args = append(args, f.BeforeID)
	}
	args = append(args, store.AuditLimit(f))
	out := []store.AuditRecord{}
	err := queryRows(ctx, s.r, `SELECT `+auditColumns+` FROM audit_log WHERE `+strings.Join(conds, " AND ")+
		` ORDER BY id DESC LIMIT ?`, args, func(rows *sql.Rows) error {
		var r store.AuditRecord
		var at int64
		if err := rows.Scan(&r.ID, &at, &r.Scope.OrgID, &r.Scope.UserID, &r.Scope.ProjectID, &r.Actor, &r.ActorName,
			&r.Via, &r.Action, &r.Target, &r.ArgsHash, &r.Outcome, &r.RequestID, &r.Detail); err != nil {
			return err
		}
		r.Time = fromMicros(at)
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fail("list audit", err)
	}
	return out, nil
}

// DeleteAuditBefore deletes the records of every scope older than t, in
// batches of store.AuditDeleteBatch, each its own transaction, so that a
// deadline keeps what was deleted before it. The cut-off row opens the
// delete trigger for older records only, and is gone again before each
// transaction commits.
func (s *Store) DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.writeTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log_retention (before) VALUES (?)`, micros(t)); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE id IN
				(SELECT id FROM audit_log WHERE created_at < ? LIMIT ?)`, micros(t), store.AuditDeleteBatch)
			if err != nil {
				return err
			}
			if n, err = res.RowsAffected(); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `DELETE FROM audit_log_retention`)
			return err
		})
		if err != nil {
			return total, fail("delete audit before", err)
		}
		total += n
		if n < store.AuditDeleteBatch {
			return total, nil
		}
	}
}

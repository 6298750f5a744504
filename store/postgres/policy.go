package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

// GetToolPolicy returns the scope's tool policy rules (see store.PolicyStore).
func (s *Store) GetToolPolicy(ctx context.Context, scope store.Scope) (store.ToolPolicy, error) {
	if err := store.CheckScope(scope); err != nil {
		return store.ToolPolicy{}, fmt.Errorf("postgres: get tool policy: %w", err)
	}
	p, err := scanToolPolicy(s.pool.QueryRow(ctx, `SELECT rules, version, updated_by, updated_at FROM tool_policies
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3`, scope.OrgID, scope.UserID, scope.ProjectID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.EmptyToolPolicy(), nil
	}
	return p, s.fail(ctx, "get tool policy", err)
}

func scanToolPolicy(row pgx.Row) (store.ToolPolicy, error) {
	var (
		p     store.ToolPolicy
		rules string
	)
	if err := row.Scan(&rules, &p.Version, &p.UpdatedBy, &p.UpdatedAt); err != nil {
		return store.ToolPolicy{}, err
	}
	p.Rules, p.UpdatedAt = json.RawMessage(rules), p.UpdatedAt.UTC()
	return p, nil
}

// PutToolPolicy replaces the scope's rules if their version is still
// ifVersion (see store.PolicyStore).
func (s *Store) PutToolPolicy(ctx context.Context, scope store.Scope, rules json.RawMessage, ifVersion int64, by string) (store.ToolPolicy, error) {
	if err := store.CheckToolPolicyPut(scope, rules, ifVersion); err != nil {
		return store.ToolPolicy{}, fmt.Errorf("postgres: put tool policy: %w", err)
	}
	var out store.ToolPolicy
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The row lock (or, for a scope's first rules, the primary key) makes
		// of two writers of the same version exactly one win.
		var prev *store.ToolPolicy
		p, err := scanToolPolicy(tx.QueryRow(ctx, `SELECT rules, version, updated_by, updated_at FROM tool_policies
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 FOR UPDATE`, scope.OrgID, scope.UserID, scope.ProjectID))
		switch {
		case err == nil:
			prev = &p
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		next, err := store.NextToolPolicy(prev, rules, ifVersion, by, s.now())
		if err != nil {
			return err
		}
		if prev == nil {
			_, err = tx.Exec(ctx, `INSERT INTO tool_policies (org_id, user_id, project_id, rules, version, updated_by, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, scope.OrgID, scope.UserID, scope.ProjectID, string(next.Rules), next.Version, next.UpdatedBy, next.UpdatedAt)
		} else {
			_, err = tx.Exec(ctx, `UPDATE tool_policies SET rules = $4, version = $5, updated_by = $6, updated_at = $7
				WHERE org_id = $1 AND user_id = $2 AND project_id = $3`, scope.OrgID, scope.UserID, scope.ProjectID, string(next.Rules), next.Version, next.UpdatedBy, next.UpdatedAt)
		}
		out = next
		return err
	})
	// A concurrent first write that took the primary key is a unique
	// violation, which fail reports as ErrConflict too: the version read is stale.
	return out, s.fail(ctx, "put tool policy", err)
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/openintern/openintern/store"
)

// GetToolPolicy returns the scope's tool policy rules (see store.PolicyStore).
func (s *Store) GetToolPolicy(ctx context.Context, scope store.Scope) (store.ToolPolicy, error) {
	if err := store.CheckScope(scope); err != nil {
		return store.ToolPolicy{}, fmt.Errorf("sqlite: get tool policy: %w", err)
	}
	p, err := scanToolPolicy(s.r.QueryRowContext(ctx, `SELECT rules, version, updated_by, updated_at FROM tool_policies
		WHERE org_id = ? AND user_id = ? AND project_id = ?`, scope.OrgID, scope.UserID, scope.ProjectID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.EmptyToolPolicy(), nil
	}
	return p, fail("get tool policy", err)
}

func scanToolPolicy(row interface{ Scan(...any) error }) (store.ToolPolicy, error) {
	var (
		p       store.ToolPolicy
		rules   string
		updated int64
	)
	if err := row.Scan(&rules, &p.Version, &p.UpdatedBy, &updated); err != nil {
		return store.ToolPolicy{}, err
	}
	p.Rules, p.UpdatedAt = json.RawMessage(rules), fromMicros(updated)
	return p, nil
}

// PutToolPolicy replaces the scope's rules if their version is still
// ifVersion (see store.PolicyStore). The single writer serialises writers.
func (s *Store) PutToolPolicy(ctx context.Context, scope store.Scope, rules json.RawMessage, ifVersion int64, by string) (store.ToolPolicy, error) {
	if err := store.CheckToolPolicyPut(scope, rules, ifVersion); err != nil {
		return store.ToolPolicy{}, fmt.Errorf("sqlite: put tool policy: %w", err)
	}
	var out store.ToolPolicy
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var prev *store.ToolPolicy
		p, err := scanToolPolicy(tx.QueryRowContext(ctx, `SELECT rules, version, updated_by, updated_at FROM tool_policies
			WHERE org_id = ? AND user_id = ? AND project_id = ?`, scope.OrgID, scope.UserID, scope.ProjectID))
		switch {
		case err == nil:
			prev = &p
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		next, err := store.NextToolPolicy(prev, rules, ifVersion, by, s.now())
		if err != nil {
			return err
		}
		out = next
		_, err = tx.ExecContext(ctx, `INSERT INTO tool_policies (org_id, user_id, project_id, rules, version, updated_by, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (org_id, user_id, project_id) DO UPDATE SET rules = excluded.rules, version = excluded.version,
			updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
			scope.OrgID, scope.UserID, scope.ProjectID, string(next.Rules), next.Version, next.UpdatedBy, micros(next.UpdatedAt))
		return err
	})
	return out, fail("put tool policy", err)
}

package postgres

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

// RunSamples reads the scope's runs created in the filter's window, newest first.
func (s *Store) RunSamples(ctx context.Context, scope store.Scope, f store.RunSampleFilter) ([]store.RunSample, error) {
	if err := store.CheckScope(scope); err != nil {
		return nil, fmt.Errorf("postgres: run samples: %w", err)
	}
	q := `SELECT agent_id, group_id, role_id, status, started_at, ended_at, usage, error FROM runs
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND created_at >= $4 AND created_at < $5`
	args := []any{scope.OrgID, scope.UserID, scope.ProjectID, f.Since, f.Until}
	for _, c := range []struct{ col, v string }{{"agent_id", f.AgentID}, {"role_id", f.RoleID}, {"group_id", f.GroupID}} {
		if c.v != "" {
			args = append(args, c.v)
			q += ` AND ` + c.col + ` = $` + strconv.Itoa(len(args))
		}
	}
	args = append(args, store.SampleLimit(f))
	q += ` ORDER BY created_at DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.fail(ctx, "run samples", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.RunSample, error) {
		var r store.RunSample
		var usage, runErr []byte
		if err := row.Scan(&r.AgentID, &r.GroupID, &r.RoleID, &r.Status, &r.StartedAt, &r.EndedAt, &usage, &runErr); err != nil {
			return r, err
		}
		r.StartedAt, r.EndedAt = utcPtr(r.StartedAt), utcPtr(r.EndedAt)
		return r, r.DecodeJSON(usage, runErr)
	})
	if err != nil {
		return nil, s.fail(ctx, "run samples", err)
	}
	if out == nil {
		out = []store.RunSample{}
	}
	return out, nil
}

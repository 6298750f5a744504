package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/openintern/openintern/store"
)

// RunSamples reads the scope's runs created in the filter's window, newest first.
func (s *Store) RunSamples(ctx context.Context, scope store.Scope, f store.RunSampleFilter) ([]store.RunSample, error) {
	if err := store.CheckScope(scope); err != nil {
		return nil, fmt.Errorf("sqlite: run samples: %w", err)
	}
	q := `SELECT agent_id, group_id, role_id, status, started_at, ended_at, usage, error FROM runs
		WHERE ` + scopeCond + ` AND created_at >= ? AND created_at < ?`
	args := scopeArgs(scope, micros(f.Since), micros(f.Until))
	for _, c := range []struct{ col, v string }{{"agent_id", f.AgentID}, {"role_id", f.RoleID}, {"group_id", f.GroupID}} {
		if c.v != "" {
			q += ` AND ` + c.col + ` = ?`
			args = append(args, c.v)
		}
	}
	q += ` ORDER BY created_at DESC LIMIT ?`
	args = append(args, store.SampleLimit(f))
	out := []store.RunSample{}
	err := queryRows(ctx, s.r, q, args, func(rows *sql.Rows) error {
		var r store.RunSample
		var started, ended sql.NullInt64
		var usage string
		var runErr sql.NullString
		if err := rows.Scan(&r.AgentID, &r.GroupID, &r.RoleID, &r.Status, &started, &ended, &usage, &runErr); err != nil {
			return err
		}
		r.StartedAt, r.EndedAt = fromNullMicros(started), fromNullMicros(ended)
		var errJSON []byte
		if runErr.Valid {
			errJSON = []byte(runErr.String)
		}
		if err := r.DecodeJSON([]byte(usage), errJSON); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fail("run samples", err)
	}
	return out, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/openintern/openintern/store"
)

// lastActivity is when a run was last created, started or ended (SQLite's
// max() of several arguments is NULL when one is).
const lastActivity = `max(created_at, COALESCE(started_at, 0), COALESCE(ended_at, 0))`

// ListSessions returns a page of the scope's sessions (run session keys),
// the most recently active first, and how many there are.
func (s *Store) ListSessions(ctx context.Context, scope store.Scope, page store.Page) ([]store.Session, int, error) {
	if err := store.CheckScope(scope); err != nil {
		return nil, 0, fmt.Errorf("sqlite: list sessions: %w", err)
	}
	limit, offset := store.PageBounds(page)
	sessions, total, err := listPage(ctx, s, `SELECT count(DISTINCT session_key) FROM runs WHERE `+scopeCond, scopeArgs(scope),
		`SELECT session_key, min(created_at), max(`+lastActivity+`) AS last FROM runs WHERE `+scopeCond+`
		GROUP BY session_key ORDER BY last DESC, session_key LIMIT ? OFFSET ?`, scopeArgs(scope, limit, offset),
		func(row scanner) (store.Session, error) {
			var ss store.Session
			var first, last int64
			err := row.Scan(&ss.Key, &first, &last)
			ss.CreatedAt, ss.LastActivityAt = fromMicros(first), fromMicros(last)
			return ss, err
		})
	if err != nil {
		return nil, 0, fail("list sessions", err)
	}
	if err := s.countSessionRuns(ctx, scope, sessions); err != nil {
		return nil, 0, fail("list sessions", err)
	}
	return sessions, total, nil
}

// GetSession summarises the runs of one session.
func (s *Store) GetSession(ctx context.Context, scope store.Scope, sessionKey string) (store.Session, error) {
	if err := store.CheckScope(scope); err != nil {
		return store.Session{}, fmt.Errorf("sqlite: get session: %w", err)
	}
	var first, last sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT min(created_at), max(`+lastActivity+`) FROM runs
		WHERE `+scopeCond+` AND session_key = ?`, scopeArgs(scope, sessionKey)...).Scan(&first, &last); err != nil {
		return store.Session{}, fail("get session", err)
	}
	if !first.Valid {
		return store.Session{}, fmt.Errorf("sqlite: get session: %w", store.ErrNotFound)
	}
	sessions := []store.Session{{Key: sessionKey, CreatedAt: fromMicros(first.Int64), LastActivityAt: fromMicros(last.Int64)}}
	if err := s.countSessionRuns(ctx, scope, sessions); err != nil {
		return store.Session{}, fail("get session", err)
	}
	return sessions[0], nil
}

// countSessionRuns fills the run counts and agents of the sessions.
func (s *Store) countSessionRuns(ctx context.Context, scope store.Scope, sessions []store.Session) error {
	if len(sessions) == 0 {
		return nil
	}
	args := scopeArgs(scope)
	byKey := make(map[string]*store.Session, len(sessions))
	for i := range sessions {
		args = append(args, sessions[i].Key)
		byKey[sessions[i].Key] = &sessions[i]
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(sessions)), ", ")
	return queryRows(ctx, s.r, `SELECT session_key, agent_id, status, count(*) FROM runs
		WHERE `+scopeCond+` AND session_key IN (`+marks+`) GROUP BY session_key, agent_id, status`, args,
		func(rows *sql.Rows) error {
			var key, agentID, status string
			var n int
			if err := rows.Scan(&key, &agentID, &status, &n); err != nil {
				return err
			}
			if ss := byKey[key]; ss != nil {
				ss.AddRuns(agentID, status, n)
			}
			return nil
		})
}

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

// ListSessions returns a page of the scope's sessions (run session keys),
// the most recently active first, and how many there are.
func (s *Store) ListSessions(ctx context.Context, scope store.Scope, page store.Page) ([]store.Session, int, error) {
	if err := store.CheckScope(scope); err != nil {
		return nil, 0, fmt.Errorf("postgres: list sessions: %w", err)
	}
	limit, offset := store.PageBounds(page)
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(DISTINCT session_key) FROM runs
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3`,
		scope.OrgID, scope.UserID, scope.ProjectID).Scan(&total); err != nil {
		return nil, 0, s.fail(ctx, "list sessions", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT session_key, min(created_at), max(GREATEST(created_at, started_at, ended_at)) AS last
		FROM runs WHERE org_id = $1 AND user_id = $2 AND project_id = $3
		GROUP BY session_key ORDER BY last DESC, session_key LIMIT $4 OFFSET $5`,
		scope.OrgID, scope.UserID, scope.ProjectID, limit, offset)
	if err != nil {
		return nil, 0, s.fail(ctx, "list sessions", err)
	}
	sessions, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Session, error) {
		var ss store.Session
		err := row.Scan(&ss.Key, &ss.CreatedAt, &ss.LastActivityAt)
		ss.CreatedAt, ss.LastActivityAt = utc(ss.CreatedAt), utc(ss.LastActivityAt)
		return ss, err
	})
	if err != nil {
		return nil, 0, s.fail(ctx, "list sessions", err)
	}
	if err := s.countSessionRuns(ctx, scope, sessions); err != nil {
		return nil, 0, s.fail(ctx, "list sessions", err)
	}
	return sessions, total, nil
}

// GetSession summarises the runs of one session.
func (s *Store) GetSession(ctx context.Context, scope store.Scope, sessionKey string) (store.Session, error) {
	if err := store.CheckScope(scope); err != nil {
		return store.Session{}, fmt.Errorf("postgres: get session: %w", err)
	}
	ss := store.Session{Key: sessionKey}
	var first, last *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT min(created_at), max(GREATEST(created_at, started_at, ended_at))
		FROM runs WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND session_key = $4`,
		scope.OrgID, scope.UserID, scope.ProjectID, sessionKey).Scan(&first, &last); err != nil {
		return store.Session{}, s.fail(ctx, "get session", err)
	}
	if first == nil {
		return store.Session{}, fmt.Errorf("postgres: get session: %w", store.ErrNotFound)
	}
	ss.CreatedAt, ss.LastActivityAt = utc(*first), utc(*last)
	sessions := []store.Session{ss}
	if err := s.countSessionRuns(ctx, scope, sessions); err != nil {
		return store.Session{}, s.fail(ctx, "get session", err)
	}
	return sessions[0], nil
}

// countSessionRuns fills the run counts and agents of the sessions.
func (s *Store) countSessionRuns(ctx context.Context, scope store.Scope, sessions []store.Session) error {
	if len(sessions) == 0 {
		return nil
	}
	keys := make([]string, len(sessions))
	byKey := make(map[string]*store.Session, len(sessions))
	for i := range sessions {
		keys[i] = sessions[i].Key
		byKey[keys[i]] = &sessions[i]
	}
	rows, err := s.pool.Query(ctx, `SELECT session_key, agent_id, status, count(*) FROM runs
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND session_key = ANY($4)
		GROUP BY session_key, agent_id, status`,
		scope.OrgID, scope.UserID, scope.ProjectID, keys)
	if err != nil {
		return err
	}
	var key, agentID, status string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&key, &agentID, &status, &n}, func() error {
		if ss := byKey[key]; ss != nil {
			ss.AddRuns(agentID, status, n)
		}
		return nil
	})
	return err
}

package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

const tokenColumns = `token_id, org_id, user_id, project_id, name, role, secret_hash, created_at, expires_at, revoked_at`

func scanToken(row pgx.Row, prefix ...any) (store.APIToken, error) {
	var t store.APIToken
	err := row.Scan(append(prefix, &t.ID, &t.OrgID, &t.UserID, &t.ProjectID, &t.Name, &t.Role, &t.SecretHash, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt)...)
	t.CreatedAt = t.CreatedAt.UTC()
	t.ExpiresAt, t.RevokedAt = utcPtr(t.ExpiresAt), utcPtr(t.RevokedAt)
	return t, err
}

// CreateToken stores a new token.
func (s *Store) CreateToken(ctx context.Context, t store.APIToken) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		t.ID, t.OrgID, t.UserID, t.ProjectID, t.Name, t.Role, t.SecretHash, t.CreatedAt, t.ExpiresAt, t.RevokedAt)
	return s.fail(ctx, "create token", err)
}

// TokenByHash finds a token by its secret's hash.
func (s *Store) TokenByHash(ctx context.Context, secretHash string) (store.APIToken, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE secret_hash = $1`, secretHash))
	return t, s.fail(ctx, "token by hash", err)
}

// ListTokens lists an org's user's tokens, newest first.
func (s *Store) ListTokens(ctx context.Context, orgID, userID string) ([]store.APIToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE org_id = $1 AND user_id = $2
		ORDER BY created_at DESC, token_id DESC`, orgID, userID)
	if err != nil {
		return nil, s.fail(ctx, "list tokens", err)
	}
	defer rows.Close()
	var out []store.APIToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, s.fail(ctx, "list tokens", err)
		}
		out = append(out, t)
	}
	return out, s.fail(ctx, "list tokens", rows.Err())
}

// RevokeToken revokes a token and ends its web sessions, in one transaction.
func (s *Store) RevokeToken(ctx context.Context, orgID, userID, tokenID string, at time.Time) (store.APIToken, error) {
	var t store.APIToken
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		t, err = scanToken(tx.QueryRow(ctx, `UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $4)
			WHERE org_id = $1 AND user_id = $2 AND token_id = $3 RETURNING `+tokenColumns, orgID, userID, tokenID, at))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM web_sessions WHERE token_id = $1`, tokenID)
		return err
	})
	return t, s.fail(ctx, "revoke token", err)
}

// CreateWebSession stores a signed-in web session.
func (s *Store) CreateWebSession(ctx context.Context, ws store.WebSession) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO web_sessions (secret_hash, token_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
		ws.SecretHash, ws.TokenID, ws.CreatedAt, ws.ExpiresAt)
	return s.fail(ctx, "create web session", err)
}

// WebSessionByHash finds an unexpired session and its token.
func (s *Store) WebSessionByHash(ctx context.Context, secretHash string, now time.Time) (store.WebSession, store.APIToken, error) {
	var ws store.WebSession
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT ws.secret_hash, ws.token_id, ws.created_at, ws.expires_at, `+store.PrefixColumns("t.", tokenColumns)+`
		FROM web_sessions ws JOIN api_tokens t ON t.token_id = ws.token_id
		WHERE ws.secret_hash = $1 AND ws.expires_at > $2`, secretHash, now),
		&ws.SecretHash, &ws.TokenID, &ws.CreatedAt, &ws.ExpiresAt)
	if err != nil {
		return store.WebSession{}, store.APIToken{}, s.fail(ctx, "web session by hash", err)
	}
	ws.CreatedAt, ws.ExpiresAt = ws.CreatedAt.UTC(), ws.ExpiresAt.UTC()
	return ws, t, nil
}

// DeleteWebSession ends a session (signing out); ending one that is gone is not an error.
func (s *Store) DeleteWebSession(ctx context.Context, secretHash string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM web_sessions WHERE secret_hash = $1`, secretHash)
	return s.fail(ctx, "delete web session", err)
}

// DeleteExpiredWebSessions deletes the sessions that expired by now.
func (s *Store) DeleteExpiredWebSessions(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM web_sessions WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, s.fail(ctx, "delete expired web sessions", err)
	}
	return tag.RowsAffected(), nil
}

var _ store.TokenStore = (*Store)(nil)

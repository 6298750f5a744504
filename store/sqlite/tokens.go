package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/openintern/openintern/store"
)

const tokenColumns = `token_id, org_id, user_id, project_id, name, role, secret_hash, created_at, expires_at, revoked_at`

func scanToken(row interface{ Scan(...any) error }) (store.APIToken, error) {
	var (
		t                store.APIToken
		created          int64
		expires, revoked sql.NullInt64
	)
	err := row.Scan(&t.ID, &t.OrgID, &t.UserID, &t.ProjectID, &t.Name, &t.Role, &t.SecretHash, &created, &expires, &revoked)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromMicros(created), fromNullMicros(expires), fromNullMicros(revoked)
	return t, err
}

func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(*t), Valid: true}
}

// CreateToken stores a new token.
func (s *Store) CreateToken(ctx context.Context, t store.APIToken) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO api_tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.OrgID, t.UserID, t.ProjectID, t.Name, t.Role, t.SecretHash, micros(t.CreatedAt), nullMicros(t.ExpiresAt), nullMicros(t.RevokedAt))
	return fail("create token", err)
}

// TokenByHash finds a token by its secret's hash.
func (s *Store) TokenByHash(ctx context.Context, secretHash string) (store.APIToken, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE secret_hash = ?`, secretHash))
	return t, fail("token by hash", err)
}

// ListTokens lists an org's user's tokens, newest first.
func (s *Store) ListTokens(ctx context.Context, orgID, userID string) ([]store.APIToken, error) {
	var out []store.APIToken
	err := queryRows(ctx, s.r, `SELECT `+tokenColumns+` FROM api_tokens WHERE org_id = ? AND user_id = ?
		ORDER BY created_at DESC, token_id DESC`, []any{orgID, userID}, func(rows *sql.Rows) error {
		t, err := scanToken(rows)
		out = append(out, t)
		return err
	})
	return out, fail("list tokens", err)
}

// RevokeToken revokes a token and ends its web sessions, in one transaction.
func (s *Store) RevokeToken(ctx context.Context, orgID, userID, tokenID string, at time.Time) (store.APIToken, error) {
	var t store.APIToken
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?)
			WHERE org_id = ? AND user_id = ? AND token_id = ?`, micros(at), orgID, userID, tokenID); err != nil {
			return err
		}
		var err error
		t, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens
			WHERE org_id = ? AND user_id = ? AND token_id = ?`, orgID, userID, tokenID))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE token_id = ?`, tokenID)
		return err
	})
	return t, fail("revoke token", err)
}

// CreateWebSession stores a signed-in web session.
func (s *Store) CreateWebSession(ctx context.Context, ws store.WebSession) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO web_sessions (secret_hash, token_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		ws.SecretHash, ws.TokenID, micros(ws.CreatedAt), micros(ws.ExpiresAt))
	return fail("create web session", err)
}

// WebSessionByHash finds an unexpired session and its token.
func (s *Store) WebSessionByHash(ctx context.Context, secretHash string, now time.Time) (store.WebSession, store.APIToken, error) {
	var (
		ws               store.WebSession
		created, expires int64
	)
	row := s.r.QueryRowContext(ctx, `SELECT ws.secret_hash, ws.token_id, ws.created_at, ws.expires_at, `+store.PrefixColumns("t.", tokenColumns)+`
		FROM web_sessions ws JOIN api_tokens t ON t.token_id = ws.token_id
		WHERE ws.secret_hash = ? AND ws.expires_at > ?`, secretHash, micros(now))
	t, err := scanToken(scanPrefix{row, []any{&ws.SecretHash, &ws.TokenID, &created, &expires}})
	if err != nil {
		return store.WebSession{}, store.APIToken{}, fail("web session by hash", err)
	}
	ws.CreatedAt, ws.ExpiresAt = fromMicros(created), fromMicros(expires)
	return ws, t, nil
}

// DeleteWebSession ends a session (signing out); ending one that is gone is not an error.
func (s *Store) DeleteWebSession(ctx context.Context, secretHash string) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM web_sessions WHERE secret_hash = ?`, secretHash)
	return fail("delete web session", err)
}

// DeleteExpiredWebSessions deletes the sessions that expired by now.
func (s *Store) DeleteExpiredWebSessions(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM web_sessions WHERE expires_at <= ?`, micros(now))
	if err != nil {
		return 0, fail("delete expired web sessions", err)
	}
	n, err := res.RowsAffected()
	return n, fail("delete expired web sessions", err)
}

// scanPrefix scans some columns into dst before the ones a scanner reads.
type scanPrefix struct {
	row interface{ Scan(...any) error }
	dst []any
}

func (p scanPrefix) Scan(dest ...any) error { return p.row.Scan(append(p.dst, dest...)...) }

var _ store.TokenStore = (*Store)(nil)

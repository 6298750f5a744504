package store

import (
	"context"
	"errors"
	"time"
)

// APIToken is an API token's record. Its secret is never stored: SecretHash
// is what a presented secret is looked up by.
type APIToken struct {
	ID     string `json:"id"`
	OrgID  string `json:"org_id"`
	UserID string `json:"user_id"`
	// ProjectID binds the token to one project; "" lets a request name any.
	ProjectID  string     `json:"project_id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	SecretHash string     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// Why a token is refused.
var (
	ErrTokenExpired = errors.New("token expired")
	ErrTokenRevoked = errors.New("token revoked")
)

// Usable returns why the token cannot be used at now, or nil.
func (t APIToken) Usable(now time.Time) error {
	switch {
	case t.RevokedAt != nil:
		return ErrTokenRevoked
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return ErrTokenExpired
	}
	return nil
}

// WebSession is a signed-in web console: the cookie's secret hashed, and the
// token it was signed in with (revoking the token ends the session).
type WebSession struct {
	SecretHash string
	TokenID    string
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// TokenStore keeps API tokens and web sessions. Tokens are not scoped like
// the rest: the token is what the scope is taken from.
type TokenStore interface {
	CreateToken(ctx context.Context, t APIToken) error
	// TokenByHash finds a token, revoked or expired ones too (the caller
	// says why it refuses them); ErrNotFound if there is none.
	TokenByHash(ctx context.Context, secretHash string) (APIToken, error)
	// ListTokens lists an org's user's tokens, newest first.
	ListTokens(ctx context.Context, orgID, userID string) ([]APIToken, error)
	// RevokeToken marks a token of the org's user revoked at at (once: a
	// second revoke keeps the first time) and ends its web sessions.
	RevokeToken(ctx context.Context, orgID, userID, tokenID string, at time.Time) (APIToken, error)

	CreateWebSession(ctx context.Context, ws WebSession) error
	// WebSessionByHash finds a session that has not expired at now, with its token.
	WebSessionByHash(ctx context.Context, secretHash string, now time.Time) (WebSession, APIToken, error)
	DeleteWebSession(ctx context.Context, secretHash string) error
	DeleteExpiredWebSessions(ctx context.Context, now time.Time) (int64, error)
}

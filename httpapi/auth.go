package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

// Authentication: a request presents an API token as `Authorization: Bearer`,
// or the web console's session cookie. With auth on, one of them is required;
// with auth off (the loopback default) a request without either acts as the
// anonymous admin of the scope its headers name, and one that presents a token
// still acts as that token (so scripts work the same either way).

// TokenStore is what authentication reads (both stores implement it).
type TokenStore interface {
	TokenByHash(ctx context.Context, secretHash string) (store.APIToken, error)
	ListTokens(ctx context.Context, orgID, userID string) ([]store.APIToken, error)
	CreateToken(ctx context.Context, t store.APIToken) error
	RevokeToken(ctx context.Context, orgID, userID, tokenID string, at time.Time) (store.APIToken, error)
	CreateWebSession(ctx context.Context, ws store.WebSession) error
	WebSessionByHash(ctx context.Context, secretHash string, now time.Time) (store.WebSession, store.APIToken, error)
	DeleteWebSession(ctx context.Context, secretHash string) error
	DeleteExpiredWebSessions(ctx context.Context, now time.Time) (int64, error)
}

const (
	principalKey = "principal"
	// SessionCookie is the web console's session cookie.
	SessionCookie = "openintern_session"
	// WebSessionTTL is how long a sign-in lasts (less if the token expires sooner).
	WebSessionTTL = 12 * time.Hour
)

// principalOf is who the request acts as (set by authenticate, or by scope
// while auth is off).
func principalOf(c *gin.Context) auth.Principal {
	if p, ok := c.Get(principalKey); ok {
		return p.(auth.Principal)
	}
	return auth.Principal{}
}

// authenticate finds who is calling from the bearer token or the session
// cookie. A presented credential that is unknown, expired or revoked is 401
// whether auth is on or off: a client that sends one expects it to count.
func (s *Server) authenticate(c *gin.Context) {
	secret, via, err := credential(c.Request)
	if err != nil {
		s.refuseToken(c, "invalid_token", err.Error())
		return
	}
	if via == "" {
		if !s.deps.AuthRequired {
			c.Next() // scope sets the anonymous principal
			return
		}
		c.Header("WWW-Authenticate", `Bearer realm="openintern"`)
		s.refuseToken(c, "unauthenticated", "an API token is required: send Authorization: Bearer <token> (openintern tokens create makes one)")
		return
	}
	if !s.checkGuesses(c) {
		return
	}
	if s.deps.Tokens == nil {
		writeError(c, http.StatusNotImplemented, "tokens_unsupported", "this store does not keep API tokens")
		return
	}
	ctx, now := c.Request.Context(), s.now()
	var tok store.APIToken
	if via == auth.ViaCookie {
		_, tok, err = s.deps.Tokens.WebSessionByHash(ctx, auth.HashSecret(secret), now)
		if errors.Is(err, store.ErrNotFound) {
			clearSessionCookie(c)
			s.refuseToken(c, "session_expired", "the web session has ended; sign in again")
			return
		}
	} else {
		tok, err = s.deps.Tokens.TokenByHash(ctx, auth.HashSecret(secret))
		if errors.Is(err, store.ErrNotFound) {
			s.refuseToken(c, "invalid_token", "the API token is not known")
			return
		}
	}
	if err != nil {
		s.fail(c, err, "token")
		return
	}
	if code, msg := unusable(tok, now); code != "" {
		s.refuseTokenOf(c, tok, code, msg)
		return
	}
	if via == auth.ViaCookie && !safeMethod(c.Request.Method) && !sameOrigin(c.Request) {
		// A cookie rides along with any request the browser makes, so a
		// state-changing one must show it comes from the console's own page.
		writeError(c, http.StatusForbidden, "cross_origin", "a request signed in by cookie must come from the console's own origin (Origin header)")
		return
	}
	c.Set(principalKey, principalOfToken(tok, via))
	c.Next()
}

// unusable says why a token cannot be used at now ("" when it can).
func unusable(tok store.APIToken, now time.Time) (code, message string) {
	switch err := tok.Usable(now); {
	case errors.Is(err, store.ErrTokenRevoked):
		return "token_revoked", "the API token was revoked"
	case errors.Is(err, store.ErrTokenExpired):
		return "token_expired", "the API token expired at " + tok.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return "", ""
}

func principalOfToken(tok store.APIToken, via string) auth.Principal {
	return auth.Principal{
		TokenID: tok.ID, TokenName: tok.Name, Role: auth.Role(tok.Role), Via: via,
		Scope:        store.Scope{OrgID: tok.OrgID, UserID: tok.UserID, ProjectID: tok.ProjectID},
		ProjectBound: tok.ProjectID != "",
	}
}

// credential reads the bearer token, else the session cookie; via is "" when
// the request has neither.
func credential(r *http.Request) (secret, via string, err error) {
	if h := r.Header.Values("Authorization"); len(h) > 0 {
		scheme, value, ok := strings.Cut(h[0], " ")
		value = strings.TrimSpace(value)
		if len(h) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || value == "" || len(value) > 512 {
			return "", "", errors.New("the Authorization header must be one `Bearer <token>`")
		}
		return value, auth.ViaToken, nil
	}
	if ck, err := r.Cookie(SessionCookie); err == nil && ck.Value != "" {
		return ck.Value, auth.ViaCookie, nil
	}
	return "", "", nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin reports whether a browser says the request comes from the page's
// own origin: Sec-Fetch-Site, else an Origin whose host is the request's Host.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// refuseToken answers 401 and records the refusal.
func (s *Server) refuseToken(c *gin.Context, code, message string) {
	s.refuseTokenOf(c, store.APIToken{}, code, message)
}

func (s *Server) refuseTokenOf(c *gin.Context, tok store.APIToken, code, message string) {
	if code != "unauthenticated" { // a credential was presented and failed
		s.countGuess(c)
	}
	if tok.ID != "" {
		c.Set(principalKey, principalOfToken(tok, auth.ViaToken))
	}
	writeError(c, http.StatusUnauthorized, code, message)
	s.auditRefusal(c, http.StatusUnauthorized, code)
}

// authorize refuses a principal whose role does not allow the route's.
func (s *Server) authorize(spec routeSpec) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := principalOf(c)
		if !p.Role.Allows(spec.Role) {
			writeError(c, http.StatusForbidden, "forbidden", "this needs the "+string(spec.Role)+" role; the token has the "+string(p.Role)+" role")
			return
		}
		c.Next()
	}
}

// scopeFromPrincipal checks what the request names against the token's scope:
// naming another org or user is 403 scope_mismatch, and a project may only
// narrow a token that is bound to none.
func scopeFromPrincipal(p auth.Principal, named store.Scope) (store.Scope, string) {
	sc := p.Scope
	switch {
	case named.OrgID != "" && named.OrgID != sc.OrgID:
		return sc, "the token belongs to another org than " + named.OrgID
	case named.UserID != "" && named.UserID != sc.UserID:
		return sc, "the token belongs to another user than " + named.UserID
	case sc.ProjectID != "" && named.ProjectID != "" && named.ProjectID != sc.ProjectID:
		return sc, "the token is bound to another project than " + named.ProjectID
	}
	if sc.ProjectID == "" {
		sc.ProjectID = named.ProjectID
	}
	return sc, ""
}

// requireAdmin guards the daemon-wide routes outside /api (/metrics): with
// auth on, an admin token of any org (the counters name no tenant); with auth
// off, anyone on loopback, or the admin a presented token must be.
func requireAdmin(c *gin.Context) {
	if p, ok := c.Get(principalKey); ok && !p.(auth.Principal).Role.Allows(auth.RoleAdmin) {
		writeError(c, http.StatusForbidden, "forbidden", "this needs an admin token")
		return
	}
	c.Next()
}

package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

func (s *Server) tokenRoutes(api *gin.RouterGroup) {
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/tokens", Role: auth.RoleAdmin, Secret: true,
		Summary: "Create an API token of the caller's org and user (its secret is shown once)",
		Body:    createTokenRequest{}, Response: tokenJSON{}, Status: http.StatusCreated}, s.createToken)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/tokens", Role: auth.RoleAdmin,
		Summary: "List the caller's org's user's tokens (never their secrets)", Response: tokenList{}}, s.listTokens)
	s.register(api, routeSpec{Method: http.MethodDelete, Path: "/tokens/:token_id", Role: auth.RoleAdmin,
		Summary: "Revoke a token; its web sessions end", Response: store.APIToken{}}, s.revokeToken)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/auth/whoami", Role: auth.RoleViewer,
		Summary: "Who the request acts as: token, role and scope", Response: whoamiJSON{}}, s.whoami)

	public := s.publicGroup()
	s.registerPublic(public, routeSpec{Method: http.MethodPost, Path: "/auth/login",
		Summary: "Sign the web console in with an API token: sets the session cookie",
		Body:    loginRequest{}, Response: whoamiJSON{}, Errors: []int{http.StatusUnauthorized, http.StatusNotImplemented}}, s.login)
	s.registerPublic(public, routeSpec{Method: http.MethodPost, Path: "/auth/logout",
		Summary: "Sign the web console out: ends the session and clears its cookie", Status: http.StatusNoContent}, s.logout)
}

// publicGroup is /api for the routes that need no credential.
func (s *Server) publicGroup() *gin.RouterGroup {
	return s.engine.Group("/api", s.requestDeadline, checkText, s.checkContentType)
}

type createTokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// ExpiresIn is a Go duration ("720h"); ExpiresAt an RFC 3339 time. At
	// most one; neither: the token does not expire.
	ExpiresIn string `json:"expires_in"`
	ExpiresAt string `json:"expires_at"`
	// The scope fields may be in the body, as on every route.
	OrgID     string `json:"org_id"`
	UserID    string `json:"user_id"`
	ProjectID string `json:"project_id"`
}

type tokenJSON struct {
	store.APIToken
	// Secret is set only in the answer that created the token.
	Secret string `json:"secret,omitempty"`
}

// createToken makes a token of the caller's org and user, bound to the
// request's project when it names one, with at most the caller's role.
func (s *Server) createToken(c *gin.Context) {
	var req createTokenRequest
	if !bindJSON(c, &req) {
		return
	}
	p, now := principalOf(c), s.now()
	var expires *time.Time
	switch {
	case req.ExpiresIn != "" && req.ExpiresAt != "":
		writeError(c, http.StatusBadRequest, "invalid_expiry", "give expires_in or expires_at, not both")
		return
	case req.ExpiresIn != "":
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			writeError(c, http.StatusBadRequest, "invalid_expiry", "expires_in must be a positive duration such as 720h")
			return
		}
		at := now.Add(d)
		expires = &at
	case req.ExpiresAt != "":
		at, err := time.Parse(time.RFC3339, req.ExpiresAt)
		if err != nil {
			writeError(c, http.StatusBadRequest, "invalid_expiry", "expires_at must be an RFC 3339 time")
			return
		}
		expires = &at
	}
	tok, secret, err := auth.Issue(auth.TokenRequest{Scope: scopeOf(c), Name: req.Name, Role: req.Role, ExpiresAt: expires, Now: now})
	if err != nil {
		writeError(c, http.StatusBadRequest, "invalid_token_request", err.Error())
		return
	}
	if !p.Role.Allows(auth.Role(tok.Role)) {
		writeError(c, http.StatusForbidden, "forbidden", "a token cannot make a token with more rights than its own ("+string(p.Role)+")")
		return
	}
	if err := s.deps.Tokens.CreateToken(c.Request.Context(), tok); err != nil {
		s.fail(c, err, "token")
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, tokenJSON{APIToken: tok, Secret: secret})
}

func (s *Server) listTokens(c *gin.Context) {
	p := principalOf(c)
	list, err := s.deps.Tokens.ListTokens(c.Request.Context(), p.Scope.OrgID, p.Scope.UserID)
	if err != nil {
		s.fail(c, err, "tokens")
		return
	}
	out := make([]store.APIToken, 0, len(list))
	for _, t := range list {
		if visibleToken(p, t) {
			out = append(out, t)
		}
	}
	c.JSON(http.StatusOK, gin.H{"tokens": out})
}

// visibleToken: a token bound to a project sees and revokes only the tokens
// bound to the same project.
func visibleToken(p auth.Principal, t store.APIToken) bool {
	return !p.ProjectBound || t.ProjectID == p.Scope.ProjectID
}

func (s *Server) revokeToken(c *gin.Context) {
	p, id := principalOf(c), c.Param("token_id")
	if !scopeIDPattern.MatchString(id) {
		writeError(c, http.StatusNotFound, "not_found", "token not found")
		return
	}
	list, err := s.deps.Tokens.ListTokens(c.Request.Context(), p.Scope.OrgID, p.Scope.UserID)
	if err != nil {
		s.fail(c, err, "token")
		return
	}
	found := false
	for _, t := range list {
		found = found || (t.ID == id && visibleToken(p, t))
	}
	if !found {
		writeError(c, http.StatusNotFound, "not_found", "token not found")
		return
	}
	tok, err := s.deps.Tokens.RevokeToken(c.Request.Context(), p.Scope.OrgID, p.Scope.UserID, id, s.now())
	if err != nil {
		s.fail(c, err, "token")
		return
	}
	c.JSON(http.StatusOK, tok)
}

type whoamiJSON struct {
	AuthRequired bool        `json:"auth_required"`
	Via          string      `json:"via"`
	Role         auth.Role   `json:"role"`
	Scope        store.Scope `json:"scope"`
	ProjectBound bool        `json:"project_bound"`
	TokenID      string      `json:"token_id,omitempty"`
	TokenName    string      `json:"token_name,omitempty"`
}

func (s *Server) whoami(c *gin.Context) { c.JSON(http.StatusOK, s.whoamiOf(principalOf(c))) }

func (s *Server) whoamiOf(p auth.Principal) whoamiJSON {
	return whoamiJSON{
		AuthRequired: s.deps.AuthRequired, Via: p.Via, Role: p.Role, Scope: p.Scope,
		ProjectBound: p.ProjectBound, TokenID: p.TokenID, TokenName: p.TokenName,
	}
}

type loginRequest struct {
	Token string `json:"token"`
}

// login checks a token and starts a web session for it: an HttpOnly,
// SameSite=Strict cookie (Secure over TLS) that EventSource streams carry too.
func (s *Server) login(c *gin.Context) {
	var req loginRequest
	if !bindJSON(c, &req) {
		return
	}
	if s.deps.Tokens == nil {
		writeError(c, http.StatusNotImplemented, "tokens_unsupported", "this store does not keep API tokens")
		return
	}
	if !s.checkGuesses(c) {
		return
	}
	ctx, now := c.Request.Context(), s.now()
	tok, err := s.deps.Tokens.TokenByHash(ctx, auth.HashSecret(strings.TrimSpace(req.Token)))
	switch {
	case errors.Is(err, store.ErrNotFound) || strings.TrimSpace(req.Token) == "":
		s.refuseToken(c, "invalid_token", "the API token is not known")
		return
	case err != nil:
		s.fail(c, err, "token")
		return
	}
	if code, msg := unusable(tok, now); code != "" {
		s.refuseTokenOf(c, tok, code, msg)
		return
	}
	s.sweepWebSessions(ctx, now)
	secret, hash := auth.NewSecret()
	expires := now.Add(WebSessionTTL)
	if tok.ExpiresAt != nil && tok.ExpiresAt.Before(expires) {
		expires = *tok.ExpiresAt
	}
	if err := s.deps.Tokens.CreateWebSession(ctx, store.WebSession{SecretHash: hash, TokenID: tok.ID, CreatedAt: now, ExpiresAt: expires}); err != nil {
		s.fail(c, err, "web session")
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: SessionCookie, Value: secret, Path: "/", Expires: expires, MaxAge: int(expires.Sub(now).Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Request.TLS != nil || s.deps.SecureCookies,
	})
	p := principalOfToken(tok, auth.ViaCookie)
	c.Set(principalKey, p)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, s.whoamiOf(p))
}

// logout ends the cookie's session, if any, and clears the cookie.
func (s *Server) logout(c *gin.Context) {
	if ck, err := c.Request.Cookie(SessionCookie); err == nil && ck.Value != "" && s.deps.Tokens != nil {
		if err := s.deps.Tokens.DeleteWebSession(c.Request.Context(), auth.HashSecret(ck.Value)); err != nil {
			s.fail(c, err, "web session")
			return
		}
	}
	clearSessionCookie(c)
	c.Status(http.StatusNoContent)
}

func clearSessionCookie(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// sweepWebSessions deletes expired sessions now and then, from a sign-in
// (no goroutine of its own to outlive the daemon).
func (s *Server) sweepWebSessions(ctx context.Context, now time.Time) {
	next := s.sessionSweep.Load()
	if now.UnixNano() < next || !s.sessionSweep.CompareAndSwap(next, now.Add(time.Hour).UnixNano()) {
		return
	}
	if _, err := s.deps.Tokens.DeleteExpiredWebSessions(ctx, now); err != nil {
		s.deps.Logger.Warn("delete expired web sessions", "err", err)
	}
}

// refuseIdempotencyKey answers 400 to an Idempotency-Key on a route whose
// answer holds a secret: the secret is never stored, so it cannot be replayed.
func refuseIdempotencyKey(c *gin.Context) {
	if c.Request.Header.Get(IdempotencyKeyHeader) != "" {
		writeError(c, http.StatusBadRequest, "idempotency_unsupported",
			"this answer holds a secret that is shown once and never stored, so it cannot be replayed; send it without "+IdempotencyKeyHeader)
		return
	}
	c.Next()
}

package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

func withAuth(d *Deps) { d.AuthRequired = true }

// issue stores a token made directly in the store, as `openintern tokens
// create` does, and returns its secret.
func (h *harness) issue(scope store.Scope, role auth.Role, expires *time.Time) (store.APIToken, string) {
	h.t.Helper()
	tok, secret, err := auth.Issue(auth.TokenRequest{Scope: scope, Name: "test " + string(role), Role: string(role), Now: time.Now()})
	if err != nil {
		h.t.Fatal(err)
	}
	tok.ExpiresAt = expires
	if err := h.store.(store.TokenStore).CreateToken(h.t.Context(), tok); err != nil {
		h.t.Fatal(err)
	}
	return tok, secret
}

// bearer is a request's headers with only a token (no scope headers).
func bearer(secret string, more ...string) map[string]string {
	hdr := map[string]string{"Authorization": "Bearer " + secret, "x-org-id": "", "x-user-id": ""}
	for i := 0; i+1 < len(more); i += 2 {
		hdr[more[i]] = more[i+1]
	}
	return hdr
}

// With auth on, the token decides who and where: no credential is 401, the
// role decides what, the scope comes from the token and naming another is 403,
// revoked and expired tokens are 401, and tokens made through the API work.
func TestTokenAuth(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind, withAuth)
			o1 := store.Scope{OrgID: "o1", UserID: "u1"}
			_, admin := h.issue(o1, auth.RoleAdmin, nil)

			r := h.wantError(http.StatusUnauthorized, "unauthenticated", request{method: "GET", path: "/api/agents"})
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: %v", r.header)
			}
			h.wantError(http.StatusUnauthorized, "invalid_token", request{method: "GET", path: "/api/agents", header: map[string]string{"Authorization": "Basic abc"}})
			h.wantError(http.StatusUnauthorized, "invalid_token", request{method: "GET", path: "/api/agents", header: bearer("oit_nope")})

			h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`, header: bearer(admin)})
			// The scope is the token's: the same org named in a header is fine, another is 403.
			h.must(http.StatusOK, request{method: "GET", path: "/api/agents/a1", header: bearer(admin, "x-org-id", "o1")})
			h.wantError(http.StatusForbidden, "scope_mismatch", request{method: "GET", path: "/api/agents/a1", header: bearer(admin, "x-org-id", "o2")})
			h.wantError(http.StatusForbidden, "scope_mismatch", request{method: "GET", path: "/api/agents?user_id=u2", header: bearer(admin)})
			h.wantError(http.StatusForbidden, "scope_mismatch", request{method: "POST", path: "/api/agents/a1/messages",
				body: `{"org_id":"o2","content":"hi"}`, header: bearer(admin)})

			made := func(role auth.Role, extra string) (store.APIToken, string) {
				t.Helper()
				r := h.must(http.StatusCreated, request{method: "POST", path: "/api/tokens",
					body: `{"name":"` + string(role) + `","role":"` + string(role) + `"` + extra + `}`, header: bearer(admin)})
				var tj tokenJSON
				if err := json.Unmarshal(r.body, &tj); err != nil || !strings.HasPrefix(tj.Secret, auth.SecretPrefix) || tj.Role != string(role) {
					t.Fatalf("created token: %v %s", err, r.body)
				}
				if r.header.Get("Cache-Control") != "no-store" {
					t.Errorf("a secret's answer may be cached: %v", r.header)
				}
				return tj.APIToken, tj.Secret
			}
			_, viewer := made(auth.RoleViewer, "")
			memberTok, member := made(auth.RoleMember, `,"expires_in":"1h"`)

			h.must(http.StatusOK, request{method: "GET", path: "/api/agents/a1", header: bearer(viewer)})
			h.wantError(http.StatusForbidden, "forbidden", request{method: "POST", path: "/api/agents/a1/messages", body: `{"content":"hi"}`, header: bearer(viewer)})
			h.must(http.StatusAccepted, request{method: "POST", path: "/api/agents/a1/messages", body: `{"content":"hi"}`, header: bearer(member)})
			h.wantError(http.StatusForbidden, "forbidden", request{method: "POST", path: "/api/agents", body: `{"agent_id":"a2","name":"B"}`, header: bearer(member)})
			h.wantError(http.StatusForbidden, "forbidden", request{method: "GET", path: "/api/tokens", header: bearer(member)})
			h.wantError(http.StatusBadRequest, "idempotency_unsupported", request{method: "POST", path: "/api/tokens",
				body: `{"name":"x","role":"viewer"}`, header: bearer(admin, IdempotencyKeyHeader, "k1")})
			h.wantError(http.StatusBadRequest, "invalid_token_request", request{method: "POST", path: "/api/tokens", body: `{"name":"x","role":"owner"}`, header: bearer(admin)})

			// Another org's member sees none of o1's ids.
			_, other := h.issue(store.Scope{OrgID: "o2", UserID: "u1"}, auth.RoleMember, nil)
			h.wantError(http.StatusNotFound, "not_found", request{method: "GET", path: "/api/agents/a1", header: bearer(other)})
			h.wantError(http.StatusNotFound, "not_found", request{method: "POST", path: "/api/agents/a1/messages", body: `{"content":"hi"}`, header: bearer(other)})

			// A project-bound token acts in its project; a header may not move it.
			_, bound := h.issue(store.Scope{OrgID: "o1", UserID: "u1", ProjectID: "p1"}, auth.RoleAdmin, nil)
			h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"pa","name":"P"}`, header: bearer(bound)})
			h.must(http.StatusOK, request{method: "GET", path: "/api/agents/pa", header: bearer(admin, "x-project-id", "p1")})
			h.wantError(http.StatusNotFound, "not_found", request{method: "GET", path: "/api/agents/pa", header: bearer(admin)})
			h.wantError(http.StatusForbidden, "scope_mismatch", request{method: "GET", path: "/api/agents", header: bearer(bound, "x-project-id", "p2")})
			var listed struct{ Tokens []store.APIToken }
			if err := json.Unmarshal(h.must(http.StatusOK, request{method: "GET", path: "/api/tokens", header: bearer(bound)}).body, &listed); err != nil {
				t.Fatal(err)
			}
			if len(listed.Tokens) != 1 || listed.Tokens[0].ProjectID != "p1" {
				t.Errorf("a project-bound admin lists %+v, want only its project's token", listed.Tokens)
			}
			h.wantError(http.StatusNotFound, "not_found", request{method: "DELETE", path: "/api/tokens/" + memberTok.ID, header: bearer(bound)})

			// Revoked and expired tokens are 401 with their reason.
			h.must(http.StatusOK, request{method: "DELETE", path: "/api/tokens/" + memberTok.ID, header: bearer(admin)})
			h.wantError(http.StatusUnauthorized, "token_revoked", request{method: "GET", path: "/api/agents", header: bearer(member)})
			past := time.Now().Add(-time.Minute)
			_, expired := h.issue(o1, auth.RoleAdmin, &past)
			h.wantError(http.StatusUnauthorized, "token_expired", request{method: "GET", path: "/api/agents", header: bearer(expired)})
			if err := json.Unmarshal(h.must(http.StatusOK, request{method: "GET", path: "/api/tokens", header: bearer(admin)}).body, &listed); err != nil {
				t.Fatal(err)
			}
			if len(listed.Tokens) != 5 || strings.Contains(string(h.must(http.StatusOK, request{method: "GET", path: "/api/tokens", header: bearer(admin)}).body), "oit_") {
				t.Errorf("o1/u1's tokens: %d, or a secret is listed", len(listed.Tokens))
			}
		})
	}
}

// With auth off, a request without a credential is the admin of the scope it
// names, and one that presents a token is that token.
func TestAuthOffStillHonoursTokens(t *testing.T) {
	h := newHarness(t, "sqlite")
	_, viewer := h.issue(store.Scope{OrgID: "o1", UserID: "u1"}, auth.RoleViewer, nil)
	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`})
	h.must(http.StatusOK, request{method: "GET", path: "/api/agents/a1", header: bearer(viewer)})
	h.wantError(http.StatusForbidden, "forbidden", request{method: "DELETE", path: "/api/agents/a1", header: bearer(viewer)})
	h.wantError(http.StatusUnauthorized, "invalid_token", request{method: "GET", path: "/api/agents", header: bearer("oit_unknown")})
	who := h.must(http.StatusOK, request{method: "GET", path: "/api/auth/whoami"}).json(t)
	if who["via"] != auth.ViaNone || who["role"] != "admin" || who["auth_required"] != false {
		t.Errorf("whoami with auth off: %v", who)
	}
}

// The web console signs in with a token: an HttpOnly, SameSite=Strict session
// cookie, which authenticates reads and (from its own origin only) writes,
// until sign-out or the token's revocation.
func TestWebSessionLogin(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind, withAuth)
			tok, admin := h.issue(store.Scope{OrgID: "o1", UserID: "u1"}, auth.RoleAdmin, nil)
			noScope := map[string]string{"x-org-id": "", "x-user-id": ""}
			h.wantError(http.StatusUnauthorized, "invalid_token", request{method: "POST", path: "/api/auth/login", body: `{"token":"oit_bad"}`, header: noScope})
			r := h.must(http.StatusOK, request{method: "POST", path: "/api/auth/login", body: `{"token":"` + admin + `"}`, header: noScope})
			var session *http.Cookie
			for _, c := range (&http.Response{Header: r.header}).Cookies() {
				if c.Name == SessionCookie {
					session = c
				}
			}
			if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Value == admin || session.Secure {
				t.Fatalf("session cookie: %+v (plain HTTP: not Secure)", session)
			}
			cookie := func(more ...string) map[string]string {
				hdr := map[string]string{"Cookie": SessionCookie + "=" + session.Value, "x-org-id": "", "x-user-id": ""}
				for i := 0; i+1 < len(more); i += 2 {
					hdr[more[i]] = more[i+1]
				}
				return hdr
			}
			who := h.must(http.StatusOK, request{method: "GET", path: "/api/auth/whoami", header: cookie()}).json(t)
			if who["via"] != auth.ViaCookie || who["token_id"] != tok.ID || who["role"] != "admin" {
				t.Errorf("whoami by cookie: %v", who)
			}
			h.wantError(http.StatusForbidden, "cross_origin", request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`, header: cookie()})
			h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`,
				header: cookie("Origin", h.srv.URL)})
			h.must(http.StatusNoContent, request{method: "POST", path: "/api/auth/logout", header: cookie()})
			h.wantError(http.StatusUnauthorized, "session_expired", request{method: "GET", path: "/api/agents", header: cookie()})

			// Revoking the token ends its other sessions.
			r = h.must(http.StatusOK, request{method: "POST", path: "/api/auth/login", body: `{"token":"` + admin + `"}`, header: noScope})
			session = (&http.Response{Header: r.header}).Cookies()[0]
			h.must(http.StatusOK, request{method: "GET", path: "/api/agents", header: cookie()})
			h.must(http.StatusOK, request{method: "DELETE", path: "/api/tokens/" + tok.ID, header: cookie("Origin", h.srv.URL)})
			h.wantError(http.StatusUnauthorized, "session_expired", request{method: "GET", path: "/api/agents", header: cookie()})
			h.wantError(http.StatusUnauthorized, "token_revoked", request{method: "POST", path: "/api/auth/login", body: `{"token":"` + admin + `"}`, header: noScope})
		})
	}
}

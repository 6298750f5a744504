package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

var tokenCases = []testCase{
	{"Tokens/CreateFindListRevoke", testTokens},
	{"Tokens/WebSessions", testWebSessions},
}

func tokenStore(t *testing.T, s store.Store) store.TokenStore {
	t.Helper()
	ts, ok := s.(clockedStore).Store.(store.TokenStore)
	if !ok {
		t.Fatalf("%T does not keep tokens", s.(clockedStore).Store)
	}
	return ts
}

var tokT0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func newToken(id, org, user, project, role, hash string, created time.Time) store.APIToken {
	return store.APIToken{ID: id, OrgID: org, UserID: user, ProjectID: project, Name: "name " + id, Role: role, SecretHash: hash, CreatedAt: created}
}

// testTokens: a token is found by its hash only, listed only for its org's
// user (newest first), revoked once (the first time is kept), and another
// user's token cannot be revoked.
func testTokens(t *testing.T, s store.Store) {
	ts, ctx := tokenStore(t, s), t.Context()
	exp := tokT0.Add(time.Hour)
	a1 := newToken("tok_a1", "org1", "u1", "", "admin", "hash-a1", tokT0)
	a1.ExpiresAt = &exp
	a2 := newToken("tok_a2", "org1", "u1", "p1", "viewer", "hash-a2", tokT0.Add(time.Minute))
	b1 := newToken("tok_b1", "org1", "u2", "", "member", "hash-b1", tokT0)
	for _, tok := range []store.APIToken{a1, a2, b1} {
		must(t, ts.CreateToken(ctx, tok))
	}
	dup := newToken("tok_dup", "org1", "u1", "", "admin", "hash-a1", tokT0)
	if err := ts.CreateToken(ctx, dup); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a second token with the same hash: %v, want ErrConflict", err)
	}

	got, err := ts.TokenByHash(ctx, "hash-a1")
	must(t, err)
	if got.ID != a1.ID || got.Role != "admin" || got.ProjectID != "" || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) ||
		got.RevokedAt != nil || !got.CreatedAt.Equal(tokT0) || got.SecretHash != "hash-a1" {
		t.Fatalf("token by hash: %+v", got)
	}
	if _, err := ts.TokenByHash(ctx, "hash-none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown hash: %v, want ErrNotFound", err)
	}
	if got.Usable(tokT0) != nil || !errors.Is(got.Usable(exp), store.ErrTokenExpired) {
		t.Fatalf("usable before/at expiry: %v / %v", got.Usable(tokT0), got.Usable(exp))
	}

	list, err := ts.ListTokens(ctx, "org1", "u1")
	must(t, err)
	if len(list) != 2 || list[0].ID != "tok_a2" || list[1].ID != "tok_a1" {
		t.Fatalf("u1's tokens: %+v, want tok_a2 then tok_a1", list)
	}
	if list, _ := ts.ListTokens(ctx, "org2", "u1"); len(list) != 0 {
		t.Fatalf("another org's list: %+v", list)
	}

	if _, err := ts.RevokeToken(ctx, "org1", "u1", "tok_b1", tokT0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking another user's token: %v, want ErrNotFound", err)
	}
	rev, err := ts.RevokeToken(ctx, "org1", "u1", "tok_a2", tokT0.Add(time.Hour))
	must(t, err)
	if rev.RevokedAt == nil || !rev.RevokedAt.Equal(tokT0.Add(time.Hour)) || !errors.Is(rev.Usable(tokT0), store.ErrTokenRevoked) {
		t.Fatalf("revoked: %+v", rev)
	}
	again, err := ts.RevokeToken(ctx, "org1", "u1", "tok_a2", tokT0.Add(2*time.Hour))
	must(t, err)
	if !again.RevokedAt.Equal(tokT0.Add(time.Hour)) {
		t.Fatalf("revoked twice: the time moved to %v", again.RevokedAt)
	}
	if b, _ := ts.TokenByHash(ctx, "hash-b1"); b.RevokedAt != nil {
		t.Fatalf("another token was revoked: %+v", b)
	}
}

// testWebSessions: a session is found with its token until it expires or is
// deleted, and revoking its token ends it.
func testWebSessions(t *testing.T, s store.Store) {
	ts, ctx := tokenStore(t, s), t.Context()
	must(t, ts.CreateToken(ctx, newToken("tok_w1", "org1", "u1", "", "member", "hash-w1", tokT0)))
	must(t, ts.CreateToken(ctx, newToken("tok_w2", "org1", "u1", "", "viewer", "hash-w2", tokT0)))
	must(t, ts.CreateWebSession(ctx, store.WebSession{SecretHash: "sess-1", TokenID: "tok_w1", CreatedAt: tokT0, ExpiresAt: tokT0.Add(time.Hour)}))
	must(t, ts.CreateWebSession(ctx, store.WebSession{SecretHash: "sess-2", TokenID: "tok_w2", CreatedAt: tokT0, ExpiresAt: tokT0.Add(time.Hour)}))
	must(t, ts.CreateWebSession(ctx, store.WebSession{SecretHash: "sess-3", TokenID: "tok_w2", CreatedAt: tokT0, ExpiresAt: tokT0.Add(time.Minute)}))
	if err := ts.CreateWebSession(ctx, store.WebSession{SecretHash: "sess-x", TokenID: "tok_none", CreatedAt: tokT0, ExpiresAt: tokT0.Add(time.Hour)}); err == nil {
		t.Fatal("a session of a token that does not exist was stored")
	}

	ws, tok, err := ts.WebSessionByHash(ctx, "sess-1", tokT0.Add(time.Minute))
	must(t, err)
	if ws.TokenID != "tok_w1" || tok.ID != "tok_w1" || tok.Role != "member" || !ws.ExpiresAt.Equal(tokT0.Add(time.Hour)) {
		t.Fatalf("session: %+v with %+v", ws, tok)
	}
	if _, _, err := ts.WebSessionByHash(ctx, "sess-1", tokT0.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an expired session: %v, want ErrNotFound", err)
	}
	n, err := ts.DeleteExpiredWebSessions(ctx, tokT0.Add(2*time.Minute))
	must(t, err)
	if n != 1 {
		t.Fatalf("deleted %d expired sessions, want 1 (sess-3)", n)
	}

	must(t, ts.DeleteWebSession(ctx, "sess-1"))
	must(t, ts.DeleteWebSession(ctx, "sess-1"))
	if _, _, err := ts.WebSessionByHash(ctx, "sess-1", tokT0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a deleted session: %v, want ErrNotFound", err)
	}
	if _, err := ts.RevokeToken(ctx, "org1", "u1", "tok_w2", tokT0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.WebSessionByHash(ctx, "sess-2", tokT0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the session of a revoked token: %v, want ErrNotFound", err)
	}
}

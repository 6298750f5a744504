package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

func TestRolesAllowWhatIsBelowThem(t *testing.T) {
	for _, tc := range []struct {
		have, need Role
		want       bool
	}{
		{RoleViewer, RoleViewer, true}, {RoleViewer, RoleMember, false}, {RoleViewer, RoleAdmin, false},
		{RoleMember, RoleViewer, true}, {RoleMember, RoleMember, true}, {RoleMember, RoleAdmin, false},
		{RoleAdmin, RoleViewer, true}, {RoleAdmin, RoleMember, true}, {RoleAdmin, RoleAdmin, true},
		{"", RoleViewer, false}, {"owner", RoleViewer, false}, {RoleAdmin, "", false},
	} {
		if got := tc.have.Allows(tc.need); got != tc.want {
			t.Errorf("%q allows %q: %v, want %v", tc.have, tc.need, got, tc.want)
		}
	}
	if r, err := ParseRole(" Admin "); err != nil || r != RoleAdmin {
		t.Errorf("ParseRole(Admin): %q %v", r, err)
	}
	if _, err := ParseRole("root"); err == nil {
		t.Error("ParseRole(root) succeeded")
	}
}

func TestIssueMakesAFreshSecretAndKeepsOnlyItsHash(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	scope := store.Scope{OrgID: "o", UserID: "u", ProjectID: "p"}
	tok, secret, err := Issue(TokenRequest{Scope: scope, Name: " ci ", Role: "member", ExpiresAt: &later, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, SecretPrefix) || len(secret) < 40 || tok.SecretHash != HashSecret(secret) || strings.Contains(tok.SecretHash, secret) {
		t.Errorf("secret %q, hash %q", secret, tok.SecretHash)
	}
	if tok.Name != "ci" || tok.Role != "member" || tok.ProjectID != "p" || !strings.HasPrefix(tok.ID, "tok_") || !tok.ExpiresAt.Equal(later) {
		t.Errorf("token %+v", tok)
	}
	again, secret2, _ := Issue(TokenRequest{Scope: scope, Name: "ci", Role: "member", Now: now})
	if secret2 == secret || again.ID == tok.ID {
		t.Error("two tokens share a secret or an id")
	}
	past := now.Add(-time.Second)
	for name, req := range map[string]TokenRequest{
		"no name":      {Scope: scope, Role: "viewer", Now: now},
		"long name":    {Scope: scope, Name: strings.Repeat("n", MaxTokenNameLen+1), Role: "viewer", Now: now},
		"bad role":     {Scope: scope, Name: "x", Role: "owner", Now: now},
		"no org":       {Scope: store.Scope{UserID: "u"}, Name: "x", Role: "viewer", Now: now},
		"expired":      {Scope: scope, Name: "x", Role: "viewer", ExpiresAt: &past, Now: now},
		"NUL in name":  {Scope: scope, Name: "a\x00b", Role: "viewer", Now: now},
		"no user":      {Scope: store.Scope{OrgID: "o"}, Name: "x", Role: "viewer", Now: now},
		"expires now":  {Scope: scope, Name: "x", Role: "viewer", ExpiresAt: &now, Now: now},
		"empty role":   {Scope: scope, Name: "x", Now: now},
		"space name":   {Scope: scope, Name: "   ", Role: "viewer", Now: now},
		"unknown role": {Scope: scope, Name: "x", Role: "superuser", Now: now},
	} {
		if _, _, err := Issue(req); err == nil {
			t.Errorf("%s: issued", name)
		}
	}
}

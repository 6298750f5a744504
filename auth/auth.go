// Package auth holds who may do what: the roles an API token carries, the
// principal a request acts as, and how token secrets are made and hashed.
// Only hashes are stored; the secret is shown once, when it is created.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openintern/openintern/store"
)

// Role is what a token may do. Each role allows everything the roles below it do.
type Role string

const (
	// RoleViewer reads and streams.
	RoleViewer Role = "viewer"
	// RoleMember also sends messages, starts and cancels runs, and writes
	// memory and blackboards.
	RoleMember Role = "member"
	// RoleAdmin also manages agents, roles, groups and tokens.
	RoleAdmin Role = "admin"
)

// Roles lists the roles from least to most allowed.
var Roles = []Role{RoleViewer, RoleMember, RoleAdmin}

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleMember:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether r may do what need requires.
func (r Role) Allows(need Role) bool { return r.Valid() && need.Valid() && r.rank() >= need.rank() }

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", fmt.Errorf("unknown role %q: want viewer, member or admin", s)
	}
	return r, nil
}

// How a request was authenticated.
const (
	ViaToken  = "token"  // Authorization: Bearer
	ViaCookie = "cookie" // the web console's session cookie
	ViaNone   = "none"   // auth is off: everyone is the admin of the scope they name
)

// Principal is who a request acts as.
type Principal struct {
	TokenID   string
	TokenName string
	Role      Role
	// Scope is where the principal acts: the token's org and user, and its
	// project or (for a token bound to none) the one the request names.
	Scope store.Scope
	Via   string
	// ProjectBound: the token is bound to Scope.ProjectID (rather than the
	// request having named it).
	ProjectBound bool
}

// Actor names the principal in audit records: the token, or "anonymous".
func (p Principal) Actor() string {
	if p.TokenID == "" {
		return "anonymous"
	}
	return "token:" + p.TokenID
}

// SecretPrefix starts every token secret, so one is recognised in a log or a
// secret scanner.
const SecretPrefix = "oit_"

// NewSecret returns a fresh token secret (256 random bits) and its hash.
func NewSecret() (secret, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics on a broken system)
	secret = SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashSecret(secret)
}

// HashSecret is the stored form of a secret. A fast hash is enough: the secret
// has 256 bits of entropy, so there is nothing to brute-force.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// MaxTokenNameLen bounds a token's name.
const MaxTokenNameLen = 100

// TokenRequest is what a new token is made of; the API and the CLI both
// make tokens through Issue.
type TokenRequest struct {
	Scope     store.Scope // org and user; a ProjectID binds the token to it
	Name      string
	Role      string
	ExpiresAt *time.Time // nil: never
	Now       time.Time
}

// Issue checks a request and returns the token to store and its secret, which
// is not kept anywhere: whoever asked must be shown it now.
func Issue(req TokenRequest) (store.APIToken, string, error) {
	name := strings.TrimSpace(req.Name)
	if name == "" || utf8.RuneCountInString(name) > MaxTokenNameLen || strings.ContainsRune(name, 0) {
		return store.APIToken{}, "", fmt.Errorf("a token name is required, at most %d characters", MaxTokenNameLen)
	}
	role, err := ParseRole(req.Role)
	if err != nil {
		return store.APIToken{}, "", err
	}
	if req.Scope.OrgID == "" || req.Scope.UserID == "" {
		return store.APIToken{}, "", errors.New("a token belongs to an org and a user: both are required")
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(req.Now) {
		return store.APIToken{}, "", errors.New("the expiry must be in the future")
	}
	var id [10]byte
	_, _ = rand.Read(id[:])
	secret, hash := NewSecret()
	tok := store.APIToken{
		ID: "tok_" + hex.EncodeToString(id[:]), OrgID: req.Scope.OrgID, UserID: req.Scope.UserID, ProjectID: req.Scope.ProjectID,
		Name: name, Role: string(role), SecretHash: hash, CreatedAt: req.Now.UTC(),
	}
	if req.ExpiresAt != nil {
		at := req.ExpiresAt.UTC()
		tok.ExpiresAt = &at
	}
	return tok, secret, nil
}

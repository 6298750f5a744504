// Package secrets seals values the daemon keeps for a tenant (an MCP
// server's request headers) with AES-256-GCM, and checks references to
// secrets the daemon's environment holds instead. A sealed value carries its
// owner (scope, server, header name) as additional data, so a sealed value
// copied into another row, scope or header does not open.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// KeyEnv is the environment variable holding the key: base64 of 32 bytes.
const KeyEnv = "OPENINTERN_SECRET_KEY"

// KeyFile is the key file generated in DATA_DIR for the embedded store.
const KeyFile = "secret.key"

// EnvPrefix starts every environment variable a tenant may reference: a
// tenant must never read the daemon's own settings (DATABASE_URL, API keys).
const EnvPrefix = "OPENINTERN_MCP_SECRET_"

// version prefixes every sealed value, so the format can change later.
const version = "v1:"

// ErrNoKey: no key is configured, so nothing can be sealed or opened.
var ErrNoKey = errors.New("no secret key: set " + KeyEnv + " (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)")

// ErrOpen: a sealed value does not open with this key and owner (tampered,
// moved to another row, or sealed with another key).
var ErrOpen = errors.New("sealed value does not open (wrong key, or it belongs to another owner)")

// Sealer seals and opens values with one key. A nil *Sealer has no key: its
// methods return ErrNoKey.
type Sealer struct{ aead cipher.AEAD }

// New returns a Sealer of a 32-byte key.
func New(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secrets: the key is %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// ParseKey decodes a base64 (standard or URL, padded or not) 32-byte key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("secrets: the key decodes to %d bytes, want 32", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("secrets: the key is not base64")
}

// Load returns the daemon's Sealer: from envKey (the value of
// OPENINTERN_SECRET_KEY) when set; else, for the embedded store (one host,
// one data directory), from DATA_DIR/secret.key, generated with mode 0600 on
// first use; else nil: a daemon on PostgreSQL without a key seals nothing
// (several daemons must share one key, which a generated file cannot be).
func Load(envKey, dataDir string, embedded bool, logger *slog.Logger) (*Sealer, error) {
	if strings.TrimSpace(envKey) != "" {
		key, err := ParseKey(envKey)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KeyEnv, err)
		}
		return New(key)
	}
	if !embedded {
		return nil, nil
	}
	path := filepath.Join(dataDir, KeyFile)
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := ParseKey(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return New(key)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("secrets: read %s: %w", path, err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("secrets: generate a key: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	// O_EXCL: a daemon starting at the same moment keeps the file it wrote.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return Load("", dataDir, embedded, logger)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: create %s: %w", path, err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("secrets: write %s: %w", path, werr)
	}
	if logger != nil {
		logger.Warn("generated a secret key for sealed MCP headers; back it up with the database, or set "+KeyEnv, "path", path)
	}
	return New(key)
}

// Owner is the additional data that binds a sealed value to where it
// belongs: its fields are length-prefixed so no two owners read alike.
func Owner(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "%d:%s;", len(p), p)
	}
	return b.String()
}

// Seal encrypts value for owner (see Owner).
func (s *Sealer) Seal(value []byte, owner string) (string, error) {
	if s == nil {
		return "", ErrNoKey
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, value, []byte(owner))
	return version + base64.StdEncoding.EncodeToString(out), nil
}

// Open decrypts a value sealed for owner.
func (s *Sealer) Open(sealed, owner string) ([]byte, error) {
	if s == nil {
		return nil, ErrNoKey
	}
	rest, ok := strings.CutPrefix(sealed, version)
	if !ok {
		return nil, ErrOpen
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return nil, ErrOpen
	}
	n := s.aead.NonceSize()
	out, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(owner))
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

var envNameRE = regexp.MustCompile(`^` + EnvPrefix + `[A-Z0-9_]{1,100}$`)

// CheckEnvRef refuses an environment variable a tenant may not reference.
func CheckEnvRef(name string) error {
	if !envNameRE.MatchString(name) {
		return fmt.Errorf("an env reference must name a variable %s<NAME> (upper-case letters, digits, _): the daemon's other settings are not for tenants", EnvPrefix)
	}
	return nil
}

// LookupEnvRef reads a referenced variable; a name CheckEnvRef refuses is
// never read, whatever the store holds.
func LookupEnvRef(name string, lookup func(string) (string, bool)) (string, error) {
	if err := CheckEnvRef(name); err != nil {
		return "", err
	}
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v, ok := lookup(name)
	if !ok {
		return "", fmt.Errorf("environment variable %s is not set", name)
	}
	return v, nil
}

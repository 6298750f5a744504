package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpenBindsOwner(t *testing.T) {
	s, err := Load("", t.TempDir(), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	owner := Owner("o1", "p1", "srv", "Authorization")
	sealed, err := s.Seal([]byte("Bearer tok\x00en"), owner)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "tok") {
		t.Fatalf("sealed value shows the clear text: %s", sealed)
	}
	got, err := s.Open(sealed, owner)
	if err != nil || string(got) != "Bearer tok\x00en" {
		t.Fatalf("open: %q %v", got, err)
	}
	for _, other := range []string{Owner("o2", "p1", "srv", "Authorization"), Owner("o1", "p1", "srv2", "Authorization"),
		Owner("o1", "p1", "srv", "X-Other"), Owner("o1", "p1srv", "", "Authorization")} {
		if _, err := s.Open(sealed, other); !errors.Is(err, ErrOpen) {
			t.Fatalf("opened for another owner %q: %v", other, err)
		}
	}
	if _, err := s.Open(sealed[:len(sealed)-4]+"AAAA", owner); !errors.Is(err, ErrOpen) {
		t.Fatalf("tampered: %v", err)
	}
	var none *Sealer
	if _, err := none.Seal([]byte("x"), owner); !errors.Is(err, ErrNoKey) {
		t.Fatalf("no key: %v", err)
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	s1, err := Load("", dir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	sealed, _ := s1.Seal([]byte("v"), "o")
	s2, err := Load("", dir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s2.Open(sealed, "o"); err != nil || string(v) != "v" {
		t.Fatalf("the key file was not reused: %v", err)
	}
	// PostgreSQL without a key: none, and nothing written.
	pgDir := t.TempDir()
	if s, err := Load("", pgDir, false, nil); s != nil || err != nil {
		t.Fatalf("postgres without key: %v %v", s, err)
	}
	if _, err := os.Stat(filepath.Join(pgDir, KeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key file was generated for postgres: %v", err)
	}
	if _, err := Load("c2hvcnQ=", dir, false, nil); err == nil {
		t.Fatal("a short key was accepted")
	}
}

func TestEnvRef(t *testing.T) {
	for _, bad := range []string{"DATABASE_URL", "OPENINTERN_MCP_SECRET_", "OPENINTERN_MCP_SECRET_x", "OPENINTERN_SECRET_KEY", "OPENINTERN_MCP_SECRET_A\x00"} {
		if err := CheckEnvRef(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
		if _, err := LookupEnvRef(bad, func(string) (string, bool) { return "leak", true }); err == nil {
			t.Fatalf("%q read", bad)
		}
	}
	v, err := LookupEnvRef("OPENINTERN_MCP_SECRET_TOKEN", func(k string) (string, bool) { return "ok:" + k, true })
	if err != nil || v != "ok:OPENINTERN_MCP_SECRET_TOKEN" {
		t.Fatalf("lookup: %q %v", v, err)
	}
}

package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresURLEnv names the variable that points the tests at their PostgreSQL.
const PostgresURLEnv = "OPENINTERN_TEST_DATABASE_URL"

// DefaultPostgresURL is used when PostgresURLEnv is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// postgresTimeout bounds connecting to the server and each statement of
// PostgresURL and its cleanup.
const postgresTimeout = 30 * time.Second

// PostgresURL returns a URL of the test database (OPENINTERN_TEST_DATABASE_URL,
// default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) whose
// search_path is a new, empty schema "t_<random hex>" that only this test
// uses; the schema and everything in it are dropped when the test ends. An
// unreachable PostgreSQL fails the test: it is never skipped.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresURLEnv)
	if base == "" {
		base = DefaultPostgresURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("testenv: %s must be a postgres:// URL", PostgresURLEnv)
	}
	shown := u.Redacted()

	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random schema name: %v", err)
	}
	schema := "t_" + hex.EncodeToString(b[:])

	ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("testenv: PostgreSQL is not reachable at %s (%v); start it (trust auth, user postgres) or set %s",
			shown, err, PostgresURLEnv)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testenv: create schema %s at %s: %v", schema, shown, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("testenv: drop schema %s: %v", schema, err)
			return
		}
		defer func() { _ = conn.Close(context.Background()) }()
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("testenv: drop schema %s: %v", schema, err)
		}
	})

	q := u.Query()
	q.Set("search_path", schema+",public") // public: where extensions such as pgvector live
	u.RawQuery = q.Encode()
	return u.String()
}

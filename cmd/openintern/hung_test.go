package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/llm/llmtest"
)

// With the database hung (a real PostgreSQL whose messages table another
// session holds locked against writes), posting a message answers 503 within the commit
// timeout instead of hanging, and works again once the database answers.
func TestHungStoreAnswers503(t *testing.T) {
	cfg := newConfig(t, "postgres")
	cfg.CommitTimeout = config.Duration(300 * time.Millisecond)
	d := startDaemon(t, cfg, llmtest.NewServer(t).Provider())
	c := d.client("hung", "u")
	c.must(http.StatusCreated, "POST", "/api/agents", map[string]string{"agent_id": "a", "name": "A"}, nil)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE messages IN SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	status, body := c.req("POST", "/api/agents/a/messages", map[string]string{"content": "hello"})
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"code"`) {
		t.Fatalf("post on a hung store: %d %s", status, body)
	}
	if took := time.Since(started); took > 5*time.Second {
		t.Fatalf("answered after %s", took)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	c.must(http.StatusAccepted, "POST", "/api/agents/a/messages", map[string]string{"content": "hello again"}, nil)
}

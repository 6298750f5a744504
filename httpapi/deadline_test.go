package httpapi

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/internal/testenv"
)

// A read that waits on a locked table ends at the request deadline with a
// 503 and Retry-After, and works again once the lock is gone; a stream is
// not cut by the deadline.
func TestHungStoreReadAnswers503(t *testing.T) {
	url := testenv.PostgresURL(t)
	h := newHarnessURL(t, url, func(d *Deps) { d.RequestTimeout = 500 * time.Millisecond })
	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`})

	unlock := lockTable(t, url, "messages")
	started := time.Now()
	r := h.do(request{method: "GET", path: "/api/agents/a1"})
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("GET agent on a locked table: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
	if took := time.Since(started); took > 5*time.Second {
		t.Fatalf("answered after %s", took)
	}
	unlock()
	h.must(http.StatusOK, request{method: "GET", path: "/api/agents/a1"})

	// A stream outlives the deadline.
	req, _ := http.NewRequest("GET", h.srv.URL+"/api/agents/a1/stream", nil)
	req.Header.Set("x-org-id", "o1")
	req.Header.Set("x-user-id", "u1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	buf := make([]byte, 64)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(buf)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the stream ended within a second: %v", err)
	case <-time.After(time.Second):
	}
}

// lockTable takes an exclusive lock on a table of the database at url, as a
// hung or busy database would hold it, until unlock (or the test's end).
func lockTable(t *testing.T, url, table string) (unlock func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{table}.Sanitize()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

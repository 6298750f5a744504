package mailbox_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/mailbox"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
)

type nopWaker struct{}

func (nopWaker) Wake(store.Scope, string) {}

// A database that stops answering (here: a real PostgreSQL whose messages
// table another session holds locked) must not hold senders forever: Send
// fails with a deadline error (the API's 503), and works again once the
// database answers.
func TestSendFailsWhenTheStoreHangs(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	st, err := postgres.Open(ctx, url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mb := mailbox.New(st, nopWaker{}, slog.New(slog.DiscardHandler), mailbox.WithCommitTimeout(300*time.Millisecond))
	mb.Start()
	defer func() { _ = mb.Stop(ctx) }()
	scope := store.Scope{OrgID: "acme", UserID: "u"}
	msg := store.NewMessage{Scope: scope, AgentID: "a", SessionKey: "s", SenderType: store.SenderUser, Content: "hello"}

	locker, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	started := time.Now()
	go func() {
		_, err := mb.Send(ctx, msg)
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		_ = tx.Rollback(ctx) // let the hung send end
		t.Fatal("Send still waiting 10s into a hung commit")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send on a hung store: %v, want a deadline error", err)
	}
	t.Logf("Send failed after %s: %v", time.Since(started).Round(time.Millisecond), err)

	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := mb.Send(ctx, msg)
	if err != nil || m.Seq == 0 {
		t.Fatalf("Send once the store answers: %+v, %v", m, err)
	}
}

package mailbox_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/mailbox"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/sqlite"
)

// countingStore counts the commits the mailbox makes on a real store.
type countingStore struct {
	*sqlite.Store
	commits atomic.Int64
}

func (c *countingStore) EnqueueMessages(ctx context.Context, msgs []store.NewMessage) ([]store.Message, error) {
	c.commits.Add(1)
	return c.Store.EnqueueMessages(ctx, msgs)
}

// checkingWaker verifies, at each wake, that the agent's messages are already stored.
type checkingWaker struct {
	st     *sqlite.Store
	mu     sync.Mutex
	woken  map[string]int
	failed []string
}

func (w *checkingWaker) Wake(scope store.Scope, agentID string) {
	_, total, err := w.st.ListMessages(context.Background(), scope, agentID, store.MessageUnread, store.Page{Limit: 1})
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil || total == 0 {
		w.failed = append(w.failed, fmt.Sprintf("%s woken with %d stored messages (err %v)", agentID, total, err))
	}
	w.woken[agentID]++
}

func TestConcurrentSendsShareCommitsAndWakeAfterDurable(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mb.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs := &countingStore{Store: st}
	waker := &checkingWaker{st: st, woken: map[string]int{}}
	mb := mailbox.New(cs, waker, slog.New(slog.DiscardHandler))
	mb.Start()

	scope := store.Scope{OrgID: "acme", UserID: "u"}
	const senders, each = 32, 20
	var wg sync.WaitGroup
	ids := make(chan string, senders*each)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m, err := mb.Send(ctx, store.NewMessage{Scope: scope, AgentID: fmt.Sprintf("a%d", s%4), SessionKey: "s",
					SenderType: store.SenderUser, Content: fmt.Sprintf("m%d-%d", s, i)})
				if err != nil {
					t.Error(err)
					return
				}
				if m.Seq == 0 || m.ID == "" {
					t.Errorf("send returned %+v", m)
				}
				ids <- m.ID
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("message id %s returned twice", id)
		}
		seen[id] = true
	}
	total := 0
	for a := range 4 {
		_, n, err := st.ListMessages(ctx, scope, fmt.Sprintf("a%d", a), "", store.Page{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != senders*each || len(seen) != senders*each {
		t.Fatalf("stored %d, returned %d, sent %d", total, len(seen), senders*each)
	}
	if c := cs.commits.Load(); c >= senders*each {
		t.Fatalf("%d commits for %d messages: no group commit", c, senders*each)
	}
	t.Logf("%d messages in %d commits", senders*each, cs.commits.Load())

	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := mb.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if err := mb.Stop(stopCtx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := mb.Send(ctx, store.NewMessage{Scope: scope, AgentID: "a0", Content: "late"}); !errors.Is(err, mailbox.ErrClosed) {
		t.Fatalf("send after stop: %v", err)
	}
	waker.mu.Lock()
	defer waker.mu.Unlock()
	if len(waker.failed) > 0 {
		t.Fatalf("woken before durable: %v", waker.failed)
	}
	for a := range 4 {
		if waker.woken[fmt.Sprintf("a%d", a)] == 0 {
			t.Fatalf("agent a%d never woken", a)
		}
	}
}

func TestBadRowDoesNotFailItsBatch(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mb.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waker := &checkingWaker{st: st, woken: map[string]int{}}
	mb := mailbox.New(st, waker, slog.New(slog.DiscardHandler))
	mb.Start()
	defer mb.Stop(ctx)
	scope := store.Scope{OrgID: "acme", UserID: "u"}
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := store.NewMessage{Scope: scope, AgentID: "a", SessionKey: "s", SenderType: store.SenderUser, Content: "ok"}
			if i == 3 {
				msg.Scope = store.Scope{} // refused by the store: no org or user
			}
			_, errs[i] = mb.Send(ctx, msg)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i == 3) != (err != nil) {
			t.Fatalf("send %d: err %v", i, err)
		}
	}
	if _, n, _ := st.ListMessages(ctx, scope, "a", "", store.Page{Limit: 1}); n != 9 {
		t.Fatalf("stored %d messages, want the 9 good ones", n)
	}
}

func TestStopWithoutStartAndSendAfterStop(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "mb.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mb := mailbox.New(st, &checkingWaker{st: st, woken: map[string]int{}}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := mb.Stop(ctx); err != nil {
		t.Fatalf("stop without start: %v", err)
	}
	if _, err := mb.Send(ctx, store.NewMessage{Scope: store.Scope{OrgID: "o", UserID: "u"}, AgentID: "a", Content: "x"}); !errors.Is(err, mailbox.ErrClosed) {
		t.Fatalf("send after stop: %v", err)
	}
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
)

var leaseScope = store.Scope{OrgID: "o", UserID: "u"}

// waitBlockedBy waits until a backend waits for a lock that the backend pid
// holds: the write or takeover under test has reached the lease row. It
// fails at once if that call returns instead (finished).
func waitBlockedBy[T any](t *testing.T, s *Store, pid uint32, finished chan T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`,
			int32(pid)).Scan(&n)
		if err != nil {
			t.Fatalf("pg_blocking_pids: %v", err)
		}
		if n > 0 {
			return
		}
		select {
		case r := <-finished:
			t.Fatalf("the call did not wait for the lease row's lock: %+v", r)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for a backend blocked on the lease row")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func backendPID(t *testing.T, tx pgx.Tx) uint32 {
	t.Helper()
	var pid int32
	if err := tx.QueryRow(t.Context(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatalf("pg_backend_pid: %v", err)
	}
	return uint32(pid)
}

// TestFenceHoldsOffTakeover: a write that passed its fence check holds the
// lease row until it commits; a takeover of the lease, expired meanwhile,
// waits for that commit, and the old fence is refused after it.
func TestFenceHoldsOffTakeover(t *testing.T) {
	s := open(t, testenv.PostgresURL(t))
	ctx := t.Context()
	ref := store.LeaseRef{Scope: leaseScope, Kind: store.LeaseAgent, Key: "a"}
	l1, err := s.AcquireLease(ctx, ref, "n1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The write's transaction, between its fence check and its commit.
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	b := &pgx.Batch{}
	queuePrelude(store.WithFence(ctx, l1), b, true, nil)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		t.Fatalf("fence check of a current lease: %v", err)
	}
	for {
		l, err := s.GetLease(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if !l.Live {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	type result struct {
		l   store.Lease
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := s.AcquireLease(ctx, ref, "n2", time.Minute)
		done <- result{l, err}
	}()
	waitBlockedBy(t, s, backendPID(t, tx), done)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.l.NodeID != "n2" || r.l.Epoch != 2 {
		t.Fatalf("takeover after the write committed = %+v, %v", r.l, r.err)
	}
	_, err = s.AppendEvents(store.WithFence(ctx, l1), []store.Event{{Scope: leaseScope, AgentID: "a", Type: "late"}})
	if !errors.Is(err, store.ErrFenced) {
		t.Fatalf("a write under the old fence after the takeover = %v, want ErrFenced", err)
	}
}

// TestTakeoverHoldsOffFencedWrite: a fenced write that reaches the lease row
// while a takeover is in flight waits for it, then judges the lease the
// takeover left: refused when it committed, stored when it rolled back.
func TestTakeoverHoldsOffFencedWrite(t *testing.T) {
	s := open(t, testenv.PostgresURL(t))
	ctx := t.Context()
	if _, err := s.CreateAgent(ctx, store.Agent{Scope: leaseScope, ID: "a"}); err != nil {
		t.Fatal(err)
	}
	ref := store.LeaseRef{Scope: leaseScope, Kind: store.LeaseAgent, Key: "a"}
	l1, err := s.AcquireLease(ctx, ref, "n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	fctx := store.WithFence(ctx, l1)
	for _, commit := range []bool{false, true} {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A failing check must not leave the connection out: Close waits for it.
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		if _, err := tx.Exec(ctx, `UPDATE leases SET node_id = 'n2', epoch = epoch + 1
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND kind = $4 AND key = $5`,
			ref.Scope.OrgID, ref.Scope.UserID, ref.Scope.ProjectID, ref.Kind, ref.Key); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := s.SetAgentState(fctx, leaseScope, "a", store.AgentRunning, store.Event{Type: "agent.state_changed"})
			done <- err
		}()
		waitBlockedBy(t, s, backendPID(t, tx), done)
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		err = <-done
		if commit && !errors.Is(err, store.ErrFenced) {
			t.Fatalf("write after a committed takeover = %v, want ErrFenced", err)
		}
		if !commit && err != nil {
			t.Fatalf("write after a rolled back takeover = %v, want it stored", err)
		}
	}
	_, total, err := s.ListEvents(ctx, leaseScope, store.EventFilter{AgentID: "a"})
	if err != nil || total != 1 {
		t.Fatalf("events = %d, %v; want only the write made while the lease was n1's", total, err)
	}
}

// fencedTurn enqueues a message for agent (not counted) and runs one turn of
// it with ctx: claim, agent state, two steps, finish. It returns the round
// trips of the turn.
func fencedTurn(ctx context.Context, t testing.TB, s *Store, c *roundTrips, agent string, n int) int64 {
	t.Helper()
	if _, err := s.EnqueueMessages(ctx, []store.NewMessage{{Scope: leaseScope, ID: fmt.Sprintf("%s-m%d", agent, n),
		AgentID: agent, SessionKey: "s", SenderType: store.SenderUser, SenderID: "u", Content: "hello"}}); err != nil {
		t.Fatal(err)
	}
	before := c.n.Load()
	cl, err := s.ClaimNextRun(ctx, leaseScope, agent, fmt.Sprintf("%s-run-%d", agent, n))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAgentState(ctx, leaseScope, agent, store.AgentRunning, store.Event{Type: "agent.state_changed"}); err != nil {
		t.Fatal(err)
	}
	for step := 1; step <= 2; step++ {
		if _, err := s.SaveStep(ctx, leaseScope, cl.Run.ID, &store.Checkpoint{Step: step, State: []byte(`{"m":1}`)},
			[]store.Event{{Type: "step.completed", StepID: fmt.Sprint(step)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.FinishRun(ctx, leaseScope, cl.Run.ID, store.RunResult{Status: store.RunCompleted, Output: "done", Steps: 2},
		[]store.Event{{Type: "run.completed"}}); err != nil {
		t.Fatal(err)
	}
	return c.n.Load() - before
}

// TestFenceAddsNoRoundTrip: a fenced turn makes as many round trips as an
// unfenced one; the check rides in each write's own batch.
func TestFenceAddsNoRoundTrip(t *testing.T) {
	s, c := countedStore(t)
	ctx := t.Context()
	for _, a := range []string{"plain", "fenced"} {
		if _, err := s.CreateAgent(ctx, store.Agent{Scope: leaseScope, ID: a}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.AcquireLease(ctx, store.LeaseRef{Scope: leaseScope, Kind: store.LeaseAgent, Key: "fenced"}, "n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	fctx := store.WithFence(ctx, l)
	fencedTurn(ctx, t, s, c, "plain", 0) // prepares the statements
	fencedTurn(fctx, t, s, c, "fenced", 0)
	plain := fencedTurn(ctx, t, s, c, "plain", 1)
	fenced := fencedTurn(fctx, t, s, c, "fenced", 1)
	if fenced != plain {
		t.Fatalf("a fenced turn made %d round trips, an unfenced one %d", fenced, plain)
	}
}

// BenchmarkFencedTurn measures a turn (claim, agent state, two steps,
// finish) without and with a fence; rt/op is its round trips.
func BenchmarkFencedTurn(b *testing.B) {
	for _, fenced := range []bool{false, true} {
		b.Run(fmt.Sprintf("fenced=%v", fenced), func(b *testing.B) {
			s, c := countedStore(b)
			ctx := context.Background()
			if _, err := s.CreateAgent(ctx, store.Agent{Scope: leaseScope, ID: "a"}); err != nil {
				b.Fatal(err)
			}
			if fenced {
				l, err := s.AcquireLease(ctx, store.LeaseRef{Scope: leaseScope, Kind: store.LeaseAgent, Key: "a"}, "n1", time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				ctx = store.WithFence(ctx, l)
			}
			n := 0
			fencedTurn(ctx, b, s, c, "a", n)
			var trips int64
			for b.Loop() {
				n++
				trips += fencedTurn(ctx, b, s, c, "a", n)
			}
			b.ReportMetric(float64(trips)/float64(b.N), "rt/op")
		})
	}
}

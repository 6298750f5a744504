package tools

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A tool that ignores its context outlives the call that timed out; Close
// must not return while it can still write, so nothing it does lands after
// its daemon closed the store.
func TestCloseWaitsForAbandonedCalls(t *testing.T) {
	r := NewRegistry(WithTimeout(50*time.Millisecond), WithLogger(quietLogger()))
	release := make(chan struct{})
	var wrote atomic.Bool
	mustRegister(t, r, newTool("stubborn", func(context.Context, Call) (Result, error) {
		<-release
		wrote.Store(true)
		return Result{Content: "late"}, nil
	}))
	res, outcome := r.Route(context.Background(), Call{Name: "stubborn"}, nil)
	if outcome != OutcomeError || !strings.Contains(res.Content, "timed out") {
		t.Fatalf("route: %v %+v", outcome, res)
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := r.Close(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a tool still running: %v, want a deadline error", err)
	}
	close(release)
	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !wrote.Load() {
		t.Fatal("Close returned before the abandoned call ended")
	}
}

// Close cancels calls in flight (a tool that honours its context returns at
// once), and a call routed after Close does not run.
func TestCloseCancelsCallsInFlight(t *testing.T) {
	r := NewRegistry(WithTimeout(time.Minute), WithLogger(quietLogger()))
	running := make(chan struct{})
	patient := newTool("patient", func(ctx context.Context, _ Call) (Result, error) {
		close(running)
		<-ctx.Done()
		return Result{}, context.Cause(ctx)
	})
	mustRegister(t, r, patient)
	type routed struct {
		res     Result
		outcome Outcome
	}
	done := make(chan routed, 1)
	go func() {
		res, outcome := r.Route(context.Background(), Call{Name: "patient"}, nil)
		done <- routed{res, outcome}
	}()
	<-running
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := <-done
	if got.outcome != OutcomeError || !strings.Contains(got.res.Content, "registry closed") {
		t.Fatalf("call in flight at Close: %v %+v", got.outcome, got.res)
	}
	res, outcome := r.Route(context.Background(), Call{Name: "patient"}, nil)
	if outcome != OutcomeError || !strings.Contains(res.Content, "not run") || patient.calls.Load() != 1 {
		t.Fatalf("call after Close: %v %+v, tool ran %d times", outcome, res, patient.calls.Load())
	}
}

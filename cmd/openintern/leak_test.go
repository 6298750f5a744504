package main

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/openintern/openintern/store"
)

// TestDaemonStopsEveryGoroutine runs a daemon through a run and an open
// stream, stops it, and checks that nothing it started is still running.
func TestDaemonStopsEveryGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	d := startDaemon(t, newConfig(t, "sqlite"), nil)
	c := d.client("acme", "leak")
	run := c.waitRun(c.createRun("main", "", "hello"), 10*time.Second)
	if run.Status != store.RunCompleted {
		t.Fatalf("run = %+v", run)
	}
	resp := c.openStream("/api/agents/main/stream", "")
	d.stop()
	resp.Body.Close()
	// Idle keep-alive connections of the test's own HTTP client are not the
	// daemon's. proto.actor's dead-letter throttle (a message that reached an
	// actor already stopped during shutdown) is a goroutine that ends by itself
	// after its one-second window, so it is not a leak either.
	goleak.VerifyNone(t, before,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"))
}

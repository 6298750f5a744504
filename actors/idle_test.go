package actors

import (
	"testing"
	"time"
)

// TestIdleTimerTicksOnlyWhenQuiet: a tick after a message is not due (the
// timer is armed for the rest of the idle time), a tick after d of quiet
// is, and a tick of a timer armed before is stale.
func TestIdleTimerTicksOnlyWhenQuiet(t *testing.T) {
	ticks := make(chan *idleTick, 8)
	d := 80 * time.Millisecond
	it := &idleTimer{d: d, send: func(m *idleTick) { ticks <- m }, last: time.Now()}
	it.arm(d)
	defer it.stop()
	time.Sleep(d / 2)
	it.seen("a message") // the idle time starts again
	first := <-ticks
	if it.due(first) {
		t.Fatal("a tick d after arming, with a message d/2 before it, is due")
	}
	start := time.Now()
	second := <-ticks
	if !it.due(second) {
		t.Fatalf("a tick after %s of quiet is not due", time.Since(it.last))
	}
	if waited := time.Since(start); waited < d/4 {
		t.Fatalf("the rearmed tick came %s after the first, before the rest of the idle time", waited)
	}
	if it.due(first) {
		t.Fatal("a stale tick is due")
	}
	it.seen(&idleTick{}) // a tick is not a message that resets the idle time
	if time.Since(it.last) < d {
		t.Fatal("a tick reset the idle time")
	}
}

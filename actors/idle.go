package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// idleTimer tells an actor that no message came for d, as proto.actor's
// receive timeout does, without that timeout's data race: the library's
// timer goroutine disarms it by writing fields the actor's own goroutine
// reads (seen by -race in TestGroupActorPassivatesAfterSlowRun). Here the
// timer only sends an idleTick; all the state is the actor's, touched on its
// goroutine.
type idleTimer struct {
	d     time.Duration
	send  func(*idleTick)
	last  time.Time // the last message other than a tick
	timer *time.Timer
	gen   uint64 // of the armed timer: a tick of an earlier one is stale
}

// idleTick is the message an idleTimer sends its actor.
type idleTick struct{ gen uint64 }

// newIdleTimer arms a timer of d (none when d <= 0) that sends its ticks to
// self through root.
func newIdleTimer(d time.Duration, root *actor.RootContext, self *actor.PID) *idleTimer {
	t := &idleTimer{d: d, send: func(m *idleTick) { root.Send(self, m) }, last: time.Now()}
	t.arm(d)
	return t
}

func (t *idleTimer) arm(after time.Duration) {
	if t == nil || t.d <= 0 {
		return
	}
	if t.timer != nil {
		t.timer.Stop()
	}
	t.gen++
	tick := &idleTick{gen: t.gen}
	t.timer = time.AfterFunc(after, func() { t.send(tick) })
}

// seen records a message: the idle time starts again.
func (t *idleTimer) seen(msg any) {
	if _, tick := msg.(*idleTick); t == nil || tick {
		return
	}
	t.last = time.Now()
}

// due reports whether tick means the actor has been idle for d; it arms
// the timer again either way (for the rest of d when it is not due, for d
// when it is).
func (t *idleTimer) due(tick *idleTick) bool {
	if t == nil || tick.gen != t.gen {
		return false
	}
	if quiet := time.Since(t.last); quiet < t.d {
		t.arm(t.d - quiet)
		return false
	}
	t.arm(t.d)
	return true
}

func (t *idleTimer) stop() {
	if t != nil && t.timer != nil {
		t.timer.Stop()
		t.gen++
	}
}

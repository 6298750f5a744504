package actors

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: a stopped
// runtime has ended every actor, worker and timer it started. proto.actor's
// dead-letter throttle (a message that reached an actor already stopped, such
// as a straggler's report after Stop) is a goroutine that ends by itself after
// its one-second window, so it is not a leak.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"))
}

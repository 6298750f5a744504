package events_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: every bus
// and waker must stop its goroutines on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

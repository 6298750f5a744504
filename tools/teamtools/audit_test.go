package teamtools

import (
	"testing"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/tools"
)

// TestOnlyBlackboardReadIsReadOnly: the team tools that send, spawn or write
// are audited.
func TestOnlyBlackboardReadIsReadOnly(t *testing.T) {
	for _, tl := range Tools(nil, nil, &memory.Blackboard{}, Limits{}) {
		name := tl.Spec().Name
		if got, want := tools.IsReadOnly(tl), name == "blackboard_read"; got != want {
			t.Errorf("%s: read-only %v, want %v", name, got, want)
		}
	}
}

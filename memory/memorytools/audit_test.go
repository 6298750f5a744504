package memorytools

import (
	"testing"

	"github.com/openintern/openintern/tools"
)

// TestOnlyReadsAreReadOnly: the memory writes are audited, the reads not.
func TestOnlyReadsAreReadOnly(t *testing.T) {
	readOnly := map[string]bool{"memory_search": true, "memory_get": true}
	for _, tl := range Tools(nil) {
		name := tl.Spec().Name
		if got := tools.IsReadOnly(tl); got != readOnly[name] {
			t.Errorf("%s: read-only %v, want %v", name, got, readOnly[name])
		}
	}
}

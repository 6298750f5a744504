package storetest

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/openintern/openintern/store"
)

var mcpCases = []testCase{
	{"MCP/PinOnFirstSightThenChangeWaitsForApproval", testMCPPinLifecycle},
	{"MCP/ConcurrentFirstSight", testMCPPinConcurrent},
}

func mcpStore(t *testing.T, s store.Store) store.MCPPinStore {
	t.Helper()
	ms, ok := s.(clockedStore).Store.(store.MCPPinStore)
	if !ok {
		t.Fatalf("%T does not keep MCP tool pins", s.(clockedStore).Store)
	}
	return ms
}

// testMCPPinLifecycle: a tool is pinned when first seen; a changed definition
// is pending (the pin keeps the old one) until approved, with the hash the
// admin saw; going back to the pinned definition clears the pending one;
// servers and tools are keyed apart.
func testMCPPinLifecycle(t *testing.T, s store.Store) {
	ms, ctx := mcpStore(t, s), t.Context()
	defA, defB, defC := json.RawMessage(`{"name":"echo","description":"a"}`), json.RawMessage(`{"name":"echo","description":"b"}`), json.RawMessage(`{"name":"echo","description":"c"}`)

	p, err := ms.ObserveMCPTool(ctx, "srv", "echo", "hA", defA)
	must(t, err)
	if p.Hash != "hA" || p.PendingHash != "" || string(p.Definition) != string(defA) || p.PinnedAt.IsZero() {
		t.Fatalf("first sight: %+v", p)
	}
	if _, err := ms.ApproveMCPTool(ctx, "srv", "echo", ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("approve with nothing pending: %v, want ErrConflict", err)
	}
	if _, err := ms.ApproveMCPTool(ctx, "srv", "nope", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("approve unknown tool: %v, want ErrNotFound", err)
	}
	tick(t, s)
	p, err = ms.ObserveMCPTool(ctx, "srv", "echo", "hB", defB)
	must(t, err)
	if p.Hash != "hA" || p.PendingHash != "hB" || string(p.PendingDefinition) != string(defB) {
		t.Fatalf("changed: %+v", p)
	}
	// The same server name on another tool, and another server, are apart.
	observeMCP(t, ms, "srv", "other", "hX", defA)
	observeMCP(t, ms, "srv2", "echo", "hB", defB)

	pins, err := ms.ListMCPToolPins(ctx, "srv")
	must(t, err)
	if len(pins) != 2 || pins[0].Tool != "echo" || pins[0].PendingHash != "hB" || pins[1].Tool != "other" || pins[1].Hash != "hX" {
		t.Fatalf("list: %+v", pins)
	}
	// Back to the pinned definition: nothing is pending any more.
	p, err = ms.ObserveMCPTool(ctx, "srv", "echo", "hA", defA)
	must(t, err)
	if p.Hash != "hA" || p.PendingHash != "" {
		t.Fatalf("reverted: %+v", p)
	}
	observeMCP(t, ms, "srv", "echo", "hC", defC)
	if _, err := ms.ApproveMCPTool(ctx, "srv", "echo", "hB"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("approve a hash that is not the pending one: %v, want ErrConflict", err)
	}
	tick(t, s)
	p, err = ms.ApproveMCPTool(ctx, "srv", "echo", "hC")
	must(t, err)
	if p.Hash != "hC" || p.PendingHash != "" || string(p.Definition) != string(defC) || !p.PinnedAt.After(pins[0].PinnedAt) {
		t.Fatalf("approved: %+v (first pinned at %s)", p, pins[0].PinnedAt)
	}
	pins, err = ms.ListMCPToolPins(ctx, "srv")
	must(t, err)
	if pins[0].Hash != "hC" || pins[0].PendingHash != "" || len(pins[0].PendingDefinition) != 0 {
		t.Fatalf("after approval: %+v", pins[0])
	}
	// The approved definition is now the trusted one.
	p, err = ms.ObserveMCPTool(ctx, "srv", "echo", "hC", defC)
	must(t, err)
	if p.Hash != "hC" || p.PendingHash != "" {
		t.Fatalf("approved then seen: %+v", p)
	}
	other, err := ms.ListMCPToolPins(ctx, "srv2")
	must(t, err)
	if len(other) != 1 || other[0].Hash != "hB" {
		t.Fatalf("srv2: %+v", other)
	}
}

// testMCPPinConcurrent: daemons that see a new tool at once, with different
// definitions, agree on one pin and the other definition is pending.
func testMCPPinConcurrent(t *testing.T, s store.Store) {
	ms, ctx := mcpStore(t, s), t.Context()
	var wg sync.WaitGroup
	for _, h := range []string{"h1", "h2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ms.ObserveMCPTool(ctx, "srv", "t", h, json.RawMessage(`{"h":"`+h+`"}`)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	pins, err := ms.ListMCPToolPins(ctx, "srv")
	must(t, err)
	if len(pins) != 1 {
		t.Fatalf("pins: %+v", pins)
	}
	p := pins[0]
	if !((p.Hash == "h1" && p.PendingHash == "h2") || (p.Hash == "h2" && p.PendingHash == "h1")) {
		t.Fatalf("concurrent first sight: %+v", p)
	}
}

func observeMCP(t *testing.T, ms store.MCPPinStore, server, tool, hash string, def json.RawMessage) {
	t.Helper()
	_, err := ms.ObserveMCPTool(t.Context(), server, tool, hash, def)
	must(t, err)
}

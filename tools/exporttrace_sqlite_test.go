package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/sqlite"
)

// TestExportTraceSQLite runs export_trace against the real embedded store.
func TestExportTraceSQLite(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "trace.db"), nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })

	var evs []store.Event
	for i := range 1203 { // more than two pages of 500
		evs = append(evs, store.Event{Scope: scopeA, RunID: "run-1", AgentID: "main", StepID: fmt.Sprint(i / 10),
			Type: []string{"llm.called", "tool.called", "tool.result"}[i%3], Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
		if i%100 == 0 { // interleave other runs and another scope using the same run id
			evs = append(evs,
				store.Event{Scope: scopeA, RunID: "run-2", AgentID: "main", Type: "run.started"},
				store.Event{Scope: scopeB, RunID: "run-1", AgentID: "main", Type: "secret.event"})
		}
	}
	if _, err := db.AppendEvents(ctx, evs); err != nil {
		t.Fatalf("append: %v", err)
	}

	big := NewRegistry(WithMaxResultBytes(1 << 20))
	mustRegister(t, big, NewExportTrace(db))
	res, out := big.Route(ctx, exportCall(scopeA, "run-1", `{}`), nil)
	if out != OutcomeOK {
		t.Fatalf("%v %.300s", out, res.Content)
	}
	var got exportedTrace
	if err := json.Unmarshal([]byte(res.Content), &got); err != nil {
		t.Fatal(err)
	}
	list := decodeTraceEvents(t, got.Events)
	if got.Count != 1203 || len(list) != 1203 {
		t.Fatalf("count %d, events %d, want 1203", got.Count, len(list))
	}
	for i, e := range list {
		if e.RunID != "run-1" || e.Type == "secret.event" || string(e.Payload) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("event %d: %+v", i, e)
		}
		if i > 0 && e.ID <= list[i-1].ID {
			t.Fatalf("ids not increasing at %d", i)
		}
	}

	// The other scope sees only its own run-1.
	res, _ = big.Route(ctx, exportCall(scopeB, "run-1", `{"format":"jsonl"}`), nil)
	if lines := strings.Split(strings.TrimSpace(res.Content), "\n"); len(lines) != 13 || !strings.Contains(lines[0], "secret.event") {
		t.Fatalf("scope B: %d lines: %.200s", len(lines), res.Content)
	}
	// A scope without that run gets "not found".
	other := store.Scope{OrgID: "org-c", UserID: "u1"}
	res, _ = big.Route(ctx, exportCall(other, "run-1", `{}`), nil)
	if !res.IsError || res.Content != `run "run-1" not found` {
		t.Fatalf("scope C: %+v", res)
	}

	// With the default limit the trace is summarized.
	small := NewRegistry()
	mustRegister(t, small, NewExportTrace(db))
	res, _ = small.Route(ctx, exportCall(scopeA, "run-1", `{}`), nil)
	var s struct {
		Truncated bool           `json:"truncated"`
		Count     int            `json:"count"`
		Types     map[string]int `json:"types"`
	}
	if err := json.Unmarshal([]byte(res.Content), &s); err != nil || !s.Truncated || s.Count != 1203 ||
		s.Types["llm.called"] != 401 || s.Types["tool.called"] != 401 || s.Types["tool.result"] != 401 {
		t.Fatalf("summary: %v %+v", err, s)
	}
}

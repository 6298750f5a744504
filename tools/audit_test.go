package tools

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/sqlite"
)

// TestToolCallsAudited: every routed call of a tool that is not read-only
// leaves one record in the real store's audit log (ok, error, refused, bad
// arguments), with the agent as actor, its run as target and a digest of the
// arguments; read-only tools and unknown tools leave none.
func TestToolCallsAudited(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "audit.db"), nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	auditor := NewStoreAuditor(db, nil)
	r := NewRegistry(WithAuditor(auditor))
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	write := newTool("note_write", func(context.Context, Call) (Result, error) { return Result{Content: "noted"}, nil })
	fails := newTool("note_fail", func(context.Context, Call) (Result, error) { return Result{}, errors.New("disk full") })
	mustRegister(t, r, write, fails, NewReadFile(t.TempDir()))

	call := func(name, args string, allowed ...string) {
		t.Helper()
		r.Route(ctx, Call{Scope: scopeA, AgentID: "a1", RunID: "run-1", CallID: "call-" + name + args, Name: name, Args: json.RawMessage(args)}, allowed)
	}
	call("note_write", `{"x":"hello"}`)
	call("note_fail", `{}`)
	call("note_write", `{"x":"again"}`, "note_fail") // not permitted
	call("note_write", `{"x":1}`)                    // does not fit the schema
	call("read_file", `{"path":"none.txt"}`)
	call("no_such_tool", `{}`)

	recs, err := db.ListAudit(ctx, scopeA, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	type got struct{ action, outcome, detail, args string }
	want := []got{
		{"tool:note_write", store.AuditError, "invalid_arguments", `{"x":1}`},
		{"tool:note_write", store.AuditRefused, "not_permitted", `{"x":"again"}`},
		{"tool:note_fail", store.AuditError, "tool_failed", `{}`},
		{"tool:note_write", store.AuditOK, "", `{"x":"hello"}`},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		rec := recs[i]
		if rec.Action != w.action || rec.Outcome != w.outcome || rec.Detail != w.detail || rec.ArgsHash != store.HashArgs([]byte(w.args)) ||
			rec.Actor != "agent:a1" || rec.Via != store.AuditViaTool || rec.Target != "run-1" || rec.RequestID != "call-"+w.action[5:]+w.args {
			t.Errorf("record %d = %+v, want %+v", i, rec, w)
		}
	}
	if auditor.Failures() != 0 {
		t.Fatalf("%d audit failures", auditor.Failures())
	}
}

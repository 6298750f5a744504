package memory_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/sqlite"
)

// TestSummaryStoredBeforeACrashIsNotWrittenTwice: a session's summary stored
// just before a crash (its runs still queued) and a run of the session
// queued after it: the restarted writer finds the summary under the id of
// its first run, takes the runs it covers off the queue without writing
// them again, and gives the run it does not cover a summary of its own.
func TestSummaryStoredBeforeACrashIsNotWrittenTwice(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	lite, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "oi.db"), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lite.Close() }()
	svc, err := memory.New(memory.Config{Store: lite.Memory(), Embedder: memory.NewHashEmbedder(0), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	scope := store.Scope{OrgID: "acme", UserID: "alice"}
	if _, err := lite.CreateAgent(ctx, store.Agent{Scope: scope, ID: "a", Name: "a"}); err != nil {
		t.Fatal(err)
	}
	var runs []string
	for i, in := range []string{"where is parcel one", "where is parcel two", "where is parcel three"} {
		id := "run_0000000" + string(rune('1'+i))
		if _, _, err := lite.CreateRun(ctx, store.NewRun{Scope: scope, RunID: id, MessageID: "m" + id, AgentID: "a", SessionKey: "s",
			Input: in, SenderType: store.SenderUser, SenderID: "alice"}); err != nil {
			t.Fatal(err)
		}
		if _, err := lite.ClaimNextRun(ctx, scope, "a", "unused"); err != nil {
			t.Fatal(err)
		}
		if _, err := lite.FinishRun(ctx, scope, id, store.RunResult{Status: store.RunCompleted, Output: "in locker " + in[15:], Remember: true}, nil); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, id)
	}
	const before = "Run run_00000001 … (written before the crash)"
	if _, err := svc.Write(ctx, memory.WriteRequest{ID: "mem_" + runs[0], Scope: scope, Type: memory.TypeEpisodic, AgentID: "a", Text: before,
		Metadata: map[string]string{"run_id": runs[0], "run_ids": runs[0] + "," + runs[1], "kind": "run_summary"}}); err != nil {
		t.Fatal(err)
	}

	am := memory.NewAgentMemory(svc, lite, logger)
	defer func() { _ = am.Close(context.Background()) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left, err := lite.PendingSummaries(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs still queued", len(left))
		}
	}
	if m, err := svc.Get(ctx, scope, "mem_"+runs[0]); err != nil || m.Text != before {
		t.Fatalf("the summary stored before the crash = %+v, %v", m, err)
	}
	if _, err := svc.Get(ctx, scope, "mem_"+runs[1]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a covered run got a second summary: %v", err)
	}
	m, err := svc.Get(ctx, scope, "mem_"+runs[2])
	if err != nil || m.Metadata["run_id"] != runs[2] || m.Metadata["run_ids"] != "" || !strings.Contains(m.Text, "where is parcel three") ||
		strings.Contains(m.Text, "parcel two") {
		t.Fatalf("summary of the uncovered run = %+v, %v", m, err)
	}
}

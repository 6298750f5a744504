package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/sqlite"
)

// TestOrchestratorBoardOverQuota: a group run's proposal that does not fit
// the scope's memory quota is left off the blackboard (the run goes on)
// instead of failing the post, which the group actor would retry forever;
// a proposal that fits is stored.
func TestOrchestratorBoardOverQuota(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	st.SetQuotas(store.Quotas{MemoryBytesPerScope: 100})
	svc, err := memory.New(memory.Config{Store: st.Memory(), Embedder: memory.NewHashEmbedder(0)})
	if err != nil {
		t.Fatal(err)
	}
	board := orchestratorBoard{memory.NewBlackboard(svc, nil), slog.New(slog.DiscardHandler)}
	scope := store.Scope{OrgID: "o", UserID: "u"}
	if err := board.Post(ctx, scope, "g1", actors.BoardEntry{ID: "mem_p1", AgentID: "a1", RunID: "r1", Kind: "proposal", Text: "Ship on Friday."}); err != nil {
		t.Fatalf("a proposal within the quota: %v", err)
	}
	if err := board.Post(ctx, scope, "g1", actors.BoardEntry{ID: "mem_p2", AgentID: "a2", RunID: "r1", Kind: "proposal", Text: strings.Repeat("long ", 30)}); err != nil {
		t.Fatalf("a proposal over the quota: %v, want it skipped", err)
	}
	_, total, err := svc.List(ctx, scope, memory.Filter{GroupID: "g1"}, store.Page{})
	if err != nil || total != 1 {
		t.Fatalf("blackboard holds %d entries (%v), want 1", total, err)
	}
}

package memorytools_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/memory/memorytools"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
	"github.com/openintern/openintern/store/sqlite"
	"github.com/openintern/openintern/tools"
)

// TestMemoryWriteOverQuota: an agent's memory_write into a full scope gets an
// error result naming the quota, which the model can act on, rather than
// failing its run; nothing is stored.
func TestMemoryWriteOverQuota(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			logger := slog.New(slog.DiscardHandler)
			var ms interface {
				memory.Store
				store.QuotaSetter
			}
			if kind == "sqlite" {
				st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"), logger)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				ms = st.Memory()
			} else {
				st, err := postgres.Open(ctx, testenv.PostgresURL(t), logger)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				ms = st.Memory()
			}
			ms.SetQuotas(store.Quotas{MemoryBytesPerScope: 40})
			svc, err := memory.New(memory.Config{Store: ms, Embedder: memory.NewHashEmbedder(0), Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			reg := tools.NewRegistry()
			for _, tl := range memorytools.Tools(svc) {
				if err := reg.Register(tl); err != nil {
					t.Fatal(err)
				}
			}
			scope := store.Scope{OrgID: "acme", UserID: "ann"}
			call := func(callID, args string) (tools.Result, tools.Outcome) {
				return reg.Route(ctx, tools.Call{Scope: scope, AgentID: "main", RunID: "run_1", CallID: callID, Name: "memory_write", Args: json.RawMessage(args)}, nil)
			}
			if res, out := call("c1", `{"text":"The plants need water on Thursdays."}`); out != tools.OutcomeOK {
				t.Fatalf("memory_write under the quota: %v %s", out, res.Content)
			}
			res, out := call("c2", `{"text":"The office closes at six."}`)
			if out != tools.OutcomeError || !res.IsError || !strings.Contains(res.Content, "quota") {
				t.Fatalf("memory_write over the quota: %v %q, want an error result naming the quota", out, res.Content)
			}
			if _, total, err := svc.List(ctx, scope, memory.Filter{}, store.Page{}); err != nil || total != 1 {
				t.Fatalf("memories stored: %d, %v; want 1", total, err)
			}
		})
	}
}

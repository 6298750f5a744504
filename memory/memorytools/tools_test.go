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

// newService opens a real store of the kind and its memory service.
func newService(t *testing.T, kind string) *memory.Service {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	var ms memory.Store
	switch kind {
	case "sqlite":
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"), logger)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		ms = st.Memory()
	case "postgres":
		st, err := postgres.Open(ctx, testenv.PostgresURL(t), logger)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		ms = st.Memory()
	}
	svc, err := memory.New(memory.Config{Store: ms, Embedder: memory.NewHashEmbedder(0), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestToolsThroughTheRouter calls the five memory tools as the agent loop
// does: through the registry, with its schema checks, as one agent of a scope.
func TestToolsThroughTheRouter(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			svc := newService(t, kind)
			reg := tools.NewRegistry()
			for _, tl := range memorytools.Tools(svc) {
				if err := reg.Register(tl); err != nil {
					t.Fatal(err)
				}
			}
			scope := store.Scope{OrgID: "acme", UserID: "ann"}
			call := func(sc store.Scope, name, args string) (tools.Result, tools.Outcome) {
				return reg.Route(context.Background(), tools.Call{Scope: sc, AgentID: "main", RunID: "run_1", CallID: "c", Name: name, Args: json.RawMessage(args)}, nil)
			}

			res, out := call(scope, "memory_write", `{"text":"The office plants need water every Thursday.","type":"archival"}`)
			if out != tools.OutcomeOK {
				t.Fatalf("memory_write: %v %s", out, res.Content)
			}
			var written struct {
				ID     string `json:"id"`
				Stored bool   `json:"stored"`
			}
			if err := json.Unmarshal([]byte(res.Content), &written); err != nil || !written.Stored || written.ID == "" {
				t.Fatalf("memory_write result %q", res.Content)
			}
			call(scope, "memory_write", `{"text":"季度评审会议定在三月十五日。","type":"episodic"}`)

			for query, want := range map[string]string{"when do the plants get water": "Thursday", "评审会议什么时候": "三月十五日"} {
				res, out = call(scope, "memory_search", `{"query":"`+query+`","top_k":3}`)
				var found struct {
					Results []memory.Result `json:"results"`
				}
				if out != tools.OutcomeOK || json.Unmarshal([]byte(res.Content), &found) != nil || len(found.Results) == 0 || !strings.Contains(found.Results[0].Snippet, want) {
					t.Fatalf("memory_search %q: %v %s", query, out, res.Content)
				}
			}
			res, out = call(scope, "memory_get", `{"id":"`+written.ID+`"}`)
			if out != tools.OutcomeOK || !strings.Contains(res.Content, "every Thursday") || !strings.Contains(res.Content, "run_1") {
				t.Fatalf("memory_get: %v %s", out, res.Content)
			}

			// Another scope neither finds nor reads it.
			other := store.Scope{OrgID: "evil", UserID: "eve"}
			if res, _ = call(other, "memory_search", `{"query":"plants water Thursday"}`); strings.Contains(res.Content, "Thursday") {
				t.Fatalf("another scope found the memory: %s", res.Content)
			}
			if res, out = call(other, "memory_get", `{"id":"`+written.ID+`"}`); out != tools.OutcomeError || !res.IsError {
				t.Fatalf("another scope read the memory: %v %s", out, res.Content)
			}

			// Core memory: append, then replace, as the agent.
			if res, out = call(scope, "core_memory_append", `{"label":"human","text":"Ann prefers short answers."}`); out != tools.OutcomeOK {
				t.Fatalf("core_memory_append: %v %s", out, res.Content)
			}
			if res, out = call(scope, "core_memory_replace", `{"label":"human","old":"short","new":"brief"}`); out != tools.OutcomeOK {
				t.Fatalf("core_memory_replace: %v %s", out, res.Content)
			}
			blocks, err := svc.CoreBlocks(context.Background(), scope, "main")
			if err != nil {
				t.Fatal(err)
			}
			var human string
			for _, b := range blocks {
				if b.Label == "human" {
					human = b.Value
				}
			}
			if !strings.Contains(human, "Ann prefers brief answers.") {
				t.Fatalf("human block = %q", human)
			}
			if res, out = call(scope, "core_memory_replace", `{"label":"human","old":"not there","new":"x"}`); out != tools.OutcomeError {
				t.Fatalf("replacing missing text: %v %s", out, res.Content)
			}

			// Bad arguments are error results for the model, not failures.
			for name, args := range map[string]string{
				"memory_write":       `{"type":"archival"}`,
				"memory_search":      `{"query": 3}`,
				"memory_get":         `{}`,
				"core_memory_append": `{"label":"human"}`,
			} {
				if res, out = call(scope, name, args); out != tools.OutcomeError || !res.IsError {
					t.Fatalf("%s %s: %v %s", name, args, out, res.Content)
				}
			}
		})
	}
}

package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/memory/vecindex"
	"github.com/openintern/openintern/store"
)

// TestRecallOneRoundTrip: a recall-shaped search (hybrid, top 3 of 20
// candidates a leg, no filter nor weights) is one round trip once the
// scope's vectors are in memory, a full-text search too; with the embedder
// down, recall still answers from full text in one.
func TestRecallOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, rt := countedStore(t)
	ms := s.Memory()
	emb := memory.NewHashEmbedder(0)
	svc, err := memory.New(memory.Config{Store: ms, Embedder: emb})
	if err != nil {
		t.Fatal(err)
	}
	scope := store.Scope{OrgID: "o", UserID: "u"}
	var reqs []memory.WriteRequest
	for i := range 30 {
		reqs = append(reqs, memory.WriteRequest{Scope: scope, Text: fmt.Sprintf(
			"note %d: the staging database moved to cluster %d; the deploy key rotates every %d days", i, i%4, i%9)})
	}
	if _, err := svc.WriteBatch(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	if err := ms.WaitVectors(ctx, scope, emb.Model(), emb.Dim()); err != nil {
		t.Fatal(err)
	}
	k := vecindex.Key{Scope: scope, Model: emb.Model()}
	if _, loaded := ms.vi.Len(k); !loaded {
		t.Fatal("the scope's vectors are not in memory")
	}
	down, err := memory.New(memory.Config{Store: ms, Embedder: downEmbedder{emb}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		svc     *memory.Service
		req     memory.SearchRequest
		foundBy string // of the first result
	}{
		{"recall", svc, memory.SearchRequest{Scope: scope, Query: "staging database cluster 3", TopK: 3, Candidates: 20}, "fulltext,vector"},
		{"full text", svc, memory.SearchRequest{Scope: scope, Query: "deploy key rotates", Mode: memory.ModeFullText}, "fulltext"},
		{"embedder down", down, memory.SearchRequest{Scope: scope, Query: "staging database cluster 3", TopK: 3, Candidates: 20}, "fulltext"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for range 3 { // the first prepares the statement
				// The look for other writers' rows, at most once a second,
				// is no part of a recall: mark it done.
				ms.mu.Lock()
				ms.synced[k] = time.Now()
				ms.mu.Unlock()
				before := rt.n.Load()
				res, err := c.svc.Search(ctx, c.req)
				if err != nil {
					t.Fatal(err)
				}
				if n := rt.n.Load() - before; n != 1 {
					t.Fatalf("%d round trips, want 1", n)
				}
				if len(res) == 0 || strings.Join(res[0].FoundBy, ",") != c.foundBy || res[0].Snippet == "" {
					t.Fatalf("results %+v, want the first found by %s, with a snippet", res, c.foundBy)
				}
			}
		})
	}
}

type downEmbedder struct{ *memory.HashEmbedder }

func (downEmbedder) Embed(context.Context, []string) ([][]float32, error) {
	return nil, fmt.Errorf("embeddings: connection refused")
}

// TestFusedSearchPlan: with statistics of a scope of some size, the generic
// plan of the fused search reads each kept hit's chunk by its unique key,
// not by walking the scope's chunks (on empty tables the two tie, see
// TestHotPathGenericPlans).
func TestFusedSearchPlan(t *testing.T) {
	ctx := context.Background()
	s, _ := countedStore(t)
	ms := s.Memory()
	svc, err := memory.New(memory.Config{Store: ms, Embedder: memory.NewHashEmbedder(16)})
	if err != nil {
		t.Fatal(err)
	}
	scope := store.Scope{OrgID: "o", UserID: "u"}
	var reqs []memory.WriteRequest
	for i := range 400 {
		reqs = append(reqs, memory.WriteRequest{Scope: scope, Text: fmt.Sprintf("note %d about topic %d and item %d", i, i%13, i%31)})
	}
	if _, err := svc.WriteBatch(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	if err := ms.Analyze(ctx); err != nil {
		t.Fatal(err)
	}
	checkGenericPlan(t, s, "text, text, text, text[], int, float8, int, int, text[], int[], float8[], int, bool, float8, float8, float8, bigint[]",
		fusedSearchQuery, `'o', 'u', '', ARRAY['topic', '3'], 16, 0.3, 400, 20,
		ARRAY['m'], ARRAY[0], ARRAY[0.5], 3, false, 60, 1, 0.25, ARRAY[7]::bigint[]`,
		[]string{"Index Cond: (id = kept.chunk_id)", "memories_pkey", "memory_postings_rank_idx"},
		[]string{"memory_chunks_scope_id_idx", "Seq Scan on memor", "Hash Join"})
}

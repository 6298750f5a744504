package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/memory/memorytest"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
)

func openMemory(t *testing.T) memory.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), testenv.PostgresURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st.Memory()
}

func TestMemoryConformance(t *testing.T) { memorytest.Run(t, openMemory) }

// TestMemoryConformanceHNSW runs the suite with the in-memory vector index
// off, so every vector search goes through pgvector's HNSW index (as for a
// scope over the index's budget).
func TestMemoryConformanceHNSW(t *testing.T) {
	memorytest.Run(t, func(t *testing.T) memory.Store {
		ms := openMemory(t).(*postgres.MemoryStore)
		ms.SetVectorIndexBytes(0)
		return ms
	})
}

// BenchmarkMemorySearch: hybrid search p50/p99 and HNSW recall@10 against
// exact search at 10k and 100k chunks in one scope, for notes on topics (like
// real ones) and for notes of everyday words only (the worst case).
func BenchmarkMemorySearch(b *testing.B) {
	for _, corpus := range []memorytest.Corpus{memorytest.CorpusTopics, memorytest.CorpusEveryday} {
		for _, n := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("corpus=%s/chunks=%dk", corpus, n/1000), func(b *testing.B) {
				st, err := postgres.Open(context.Background(), testenv.PostgresURL(b), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				var anns []memorytest.ANN
				for _, ef := range []int{400, 1000} {
					annOnly := st.Memory()
					annOnly.SetVectorIndexBytes(0)
					annOnly.SetHNSWEfSearch(ef)
					anns = append(anns, memorytest.ANN{Name: fmt.Sprintf("ef%d", ef), Store: annOnly})
				}
				memorytest.BenchSearch(b, st.Memory(), corpus, n, anns...)
			})
		}
	}
}

// TestVectorIndexBuiltWhenNeeded: with the in-memory index on, writes do
// not create (nor pay for) the HNSW index; a search that needs it (here one
// with a metadata filter, which the in-memory index does not apply) answers
// exactly at once and builds the index in the background, after which
// searches use it.
func TestVectorIndexBuiltWhenNeeded(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	st, err := postgres.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	emb := memory.NewHashEmbedder(0)
	ms := st.Memory()
	svc, err := memory.New(memory.Config{Store: ms, Embedder: emb})
	if err != nil {
		t.Fatal(err)
	}
	scope := store.Scope{OrgID: "o", UserID: "u"}
	texts := []string{"the cat sat on the mat", "quarterly revenue grew by ten percent", "a recipe for lemon cake"}
	ids := make([]string, len(texts))
	for i, text := range texts {
		m, err := svc.Write(ctx, memory.WriteRequest{Scope: scope, Text: text, Metadata: map[string]string{"kind": "note"}})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = m.ID
	}
	hnswIndexes := func() (valid, all int) {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close(ctx) }()
		if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE i.indisvalid), count(*) FROM pg_index i
			JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE 'memory_vectors_hnsw_%'`).Scan(&valid, &all); err != nil {
			t.Fatal(err)
		}
		return valid, all
	}
	if _, all := hnswIndexes(); all != 0 {
		t.Fatalf("%d HNSW indexes after writes with the in-memory index on, want none", all)
	}

	qv, err := emb.Embed(ctx, []string{"lemon cake recipe"})
	if err != nil {
		t.Fatal(err)
	}
	search := func() string {
		t.Helper()
		hits, err := ms.VectorSearch(ctx, scope, emb.Model(), qv[0], memory.Filter{Metadata: map[string]string{"kind": "note"}}, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 3 {
			t.Fatalf("%d hits, want 3", len(hits))
		}
		return hits[0].MemoryID
	}
	if got := search(); got != ids[2] {
		t.Fatalf("exact search before the index: top hit %s, want %s", got, ids[2])
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if valid, _ := hnswIndexes(); valid == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the HNSW index was not built in the background")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := search(); got != ids[2] {
		t.Fatalf("search through the index: top hit %s, want %s", got, ids[2])
	}
}

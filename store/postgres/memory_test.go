package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/memory/memorytest"
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

package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/memory/memorytest"
	"github.com/openintern/openintern/store/sqlite"
)

func openMemory(t *testing.T) memory.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "oi.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st.Memory()
}

func TestMemoryConformance(t *testing.T) { memorytest.Run(t, openMemory) }

// BenchmarkMemorySearch: hybrid search p50/p99 and vector recall@10 at 10k
// and 100k chunks in one scope, for notes on topics and of everyday words.
func BenchmarkMemorySearch(b *testing.B) {
	for _, corpus := range []memorytest.Corpus{memorytest.CorpusTopics, memorytest.CorpusEveryday} {
		for _, n := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("corpus=%s/chunks=%dk", corpus, n/1000), func(b *testing.B) {
				st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "oi.db"), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = st.Close() }()
				memorytest.BenchSearch(b, st.Memory(), corpus, n)
			})
		}
	}
}

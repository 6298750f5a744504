package sqlite_test

import (
	"context"
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
// chunks in one scope.
func BenchmarkMemorySearch(b *testing.B) {
	b.Run("chunks=10k", func(b *testing.B) {
		st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "oi.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = st.Close() }()
		memorytest.BenchSearch(b, st.Memory(), 10_000)
	})
}

package postgres_test

import (
	"context"
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

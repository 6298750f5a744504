package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// TestTermCountsPerScope: memory_terms counts, per scope, the chunks holding
// each term (and under "" the scope's chunks); a delete takes its counts
// back, and another scope's counts are its own.
func TestTermCountsPerScope(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "oi.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	svc, err := memory.New(memory.Config{Store: st.Memory(), Embedder: memory.NewHashEmbedder(32)})
	if err != nil {
		t.Fatal(err)
	}
	a := store.Scope{OrgID: "o", UserID: "a"}
	b := store.Scope{OrgID: "o", UserID: "b"}
	df := func(sc store.Scope, term string) int64 {
		t.Helper()
		var n int64
		err := st.r.QueryRowContext(ctx, `SELECT coalesce(sum(df), 0) FROM memory_terms WHERE `+scopeCond+` AND term = ?`,
			scopeArgs(sc, term)...).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	m1, _ := svc.Write(ctx, memory.WriteRequest{Scope: a, Text: "tomato tomato basil"})
	m2, _ := svc.Write(ctx, memory.WriteRequest{Scope: a, Text: "tomato soup 番茄汤"})
	if _, err := svc.Write(ctx, memory.WriteRequest{Scope: b, Text: "tomato"}); err != nil {
		t.Fatal(err)
	}
	if df(a, "tomato") != 2 || df(a, "basil") != 1 || df(a, "番茄") != 1 || df(a, "") != 2 || df(b, "tomato") != 1 || df(b, "") != 1 {
		t.Fatalf("counts: tomato %d basil %d 番茄 %d chunks %d; b: tomato %d chunks %d",
			df(a, "tomato"), df(a, "basil"), df(a, "番茄"), df(a, ""), df(b, "tomato"), df(b, ""))
	}
	if err := svc.Delete(ctx, a, m1.ID); err != nil {
		t.Fatal(err)
	}
	if df(a, "tomato") != 1 || df(a, "basil") != 0 || df(a, "") != 1 {
		t.Fatalf("after delete: tomato %d basil %d chunks %d", df(a, "tomato"), df(a, "basil"), df(a, ""))
	}
	if err := svc.Delete(ctx, a, m2.ID); err != nil {
		t.Fatal(err)
	}
	if df(a, "tomato") != 0 || df(a, "番茄") != 0 || df(a, "") != 0 || df(b, "tomato") != 1 {
		t.Fatalf("after deleting all: tomato %d 番茄 %d chunks %d; b tomato %d", df(a, "tomato"), df(a, "番茄"), df(a, ""), df(b, "tomato"))
	}
}

package memorytest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

func setQuotas(t *testing.T, st memory.Store, q store.Quotas) {
	t.Helper()
	qs, ok := st.(store.QuotaSetter)
	if !ok {
		t.Fatalf("%T has no SetQuotas", st)
	}
	qs.SetQuotas(q)
}

// text is a memory text of exactly n bytes.
func text(n int, tag string) string {
	s := tag + " " + strings.Repeat("x", n)
	return s[:n]
}

func wantMemoryQuota(t *testing.T, err error, limit, used, adding int64) {
	t.Helper()
	if !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("write over the memory quota: error %v, want store.ErrQuotaExceeded", err)
	}
	var qe *store.QuotaError
	if !errors.As(err, &qe) {
		t.Fatalf("error %v is not a *store.QuotaError", err)
	}
	want := store.QuotaError{Quota: store.QuotaMemoryBytes, Limit: limit, Used: used, Adding: adding}
	if *qe != want {
		t.Fatalf("QuotaError = %+v, want %+v", *qe, want)
	}
}

func memoryCount(t *testing.T, st memory.Store, scope store.Scope) int {
	t.Helper()
	_, total, err := st.ListMemories(context.Background(), scope, memory.Filter{}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// testQuota: the bytes of text a scope stores are bounded; a write that
// would cross the bound stores nothing, deletes give the room back, and each
// scope counts its own. Memories written before the quota was set count.
func testQuota(t *testing.T, st memory.Store) {
	ctx := context.Background()
	svc := newService(t, st, memory.NewHashEmbedder(64))
	first := write(t, svc, memory.WriteRequest{Scope: scopeA, Text: text(60, "alpha")})
	setQuotas(t, st, store.Quotas{MemoryBytesPerScope: 100})
	_, err := svc.Write(ctx, memory.WriteRequest{Scope: scopeA, Text: text(50, "beta")})
	wantMemoryQuota(t, err, 100, 60, 50)
	// Up to the limit itself is allowed.
	write(t, svc, memory.WriteRequest{Scope: scopeA, Text: text(40, "gamma")})
	_, err = svc.Write(ctx, memory.WriteRequest{Scope: scopeA, Text: "d"})
	wantMemoryQuota(t, err, 100, 100, 1)
	// A batch is all or nothing: one over the quota refuses the rest.
	_, err = svc.WriteBatch(ctx, []memory.WriteRequest{{Scope: scopeB, Text: text(30, "eps")}, {Scope: scopeA, Text: "zeta"}})
	wantMemoryQuota(t, err, 100, 100, 4)
	if n := memoryCount(t, st, scopeB); n != 0 {
		t.Fatalf("a refused batch stored %d memories of its other scope", n)
	}
	// Other scopes count their own.
	for _, sc := range []store.Scope{scopeB, scopeP} {
		write(t, svc, memory.WriteRequest{Scope: sc, Text: text(100, "own")})
		_, err = svc.Write(ctx, memory.WriteRequest{Scope: sc, Text: "x"})
		wantMemoryQuota(t, err, 100, 100, 1)
	}
	// Multi-byte text counts in bytes (UTF-8), not characters.
	if err := svc.Delete(ctx, scopeA, first.ID); err != nil {
		t.Fatal(err)
	}
	_, err = svc.Write(ctx, memory.WriteRequest{Scope: scopeA, Text: strings.Repeat("记", 21)})
	wantMemoryQuota(t, err, 100, 40, 63)
	write(t, svc, memory.WriteRequest{Scope: scopeA, Text: strings.Repeat("记", 20)})
	// 0 is no bound.
	setQuotas(t, st, store.Quotas{})
	write(t, svc, memory.WriteRequest{Scope: scopeA, Text: text(500, "big")})
	if n := memoryCount(t, st, scopeA); n != 3 {
		t.Fatalf("scope A has %d memories, want 3", n)
	}
}

// testQuotaConcurrent: writes racing for the last room in a scope: exactly
// one gets it.
func testQuotaConcurrent(t *testing.T, st memory.Store) {
	ctx := context.Background()
	svc := newService(t, st, memory.NewHashEmbedder(64))
	setQuotas(t, st, store.Quotas{MemoryBytesPerScope: 100})
	write(t, svc, memory.WriteRequest{Scope: scopeA, Text: text(60, "base")})
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = svc.Write(ctx, memory.WriteRequest{Scope: scopeA, Text: text(30, fmt.Sprintf("w%d", i))})
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrQuotaExceeded):
			t.Fatalf("concurrent write: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent writes that each fit alone succeeded, want 1", ok, n)
	}
	if got := memoryCount(t, st, scopeA); got != 2 {
		t.Fatalf("scope holds %d memories, want 2", got)
	}
}

package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/openintern/openintern/memory/vecindex"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// TestVectorCacheMatchesScan checks the vector cache against a scan of the
// blobs through writes, deletes, filters and an eviction.
func TestVectorCacheMatchesScan(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(t.TempDir(), "oi.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	ms := st.Memory()
	emb := memory.NewHashEmbedder(64)
	svc, err := memory.New(memory.Config{Store: ms, Embedder: emb})
	if err != nil {
		t.Fatal(err)
	}
	a := store.Scope{OrgID: "o", UserID: "a"}
	b := store.Scope{OrgID: "o", UserID: "b"}
	var ids []string
	write := func(sc store.Scope, i int) {
		typ := memory.TypeEpisodic
		if i%3 == 0 {
			typ = memory.TypeArchival
		}
		m, err := svc.Write(ctx, memory.WriteRequest{Scope: sc, Type: typ, AgentID: fmt.Sprintf("ag%d", i%2),
			Text: fmt.Sprintf("note %d about the garden, tomatoes %d and basil %d", i, i%7, i%5)})
		if err != nil {
			t.Fatal(err)
		}
		if sc == a {
			ids = append(ids, m.ID)
		}
	}
	for i := range 40 {
		write(a, i)
		write(b, i)
	}
	q, _ := emb.Embed(ctx, []string{"tomatoes 3 basil"})
	check := func(f memory.Filter) {
		t.Helper()
		cond, fargs, err := filterSQL(f)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ms.scanSearch(ctx, a, emb.Model(), q[0], cond, fargs, 10)
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := ms.cachedSearch(ctx, vecindex.Key{Scope: a, Model: emb.Model()}, q[0], f, 10)
		if err != nil || !ok {
			t.Fatalf("cached search: ok %v err %v", ok, err)
		}
		if len(got) != len(want) {
			t.Fatalf("cached %d hits, scan %d", len(got), len(want))
		}
		for i := range got {
			if d := got[i].Score - want[i].Score; d > 1e-5 || d < -1e-5 {
				t.Fatalf("hit %d: cached %+v, scan %+v", i, got[i], want[i])
			}
		}
	}
	check(memory.Filter{})
	for i := 40; i < 60; i++ { // writes after the scope was loaded
		write(a, i)
	}
	check(memory.Filter{})
	for _, id := range ids[:15] {
		if err := svc.Delete(ctx, a, id); err != nil {
			t.Fatal(err)
		}
	}
	check(memory.Filter{})
	check(memory.Filter{Types: []string{memory.TypeArchival}})
	check(memory.Filter{AgentID: "ag1"})
	if n, _ := ms.vc.Len(vecindex.Key{Scope: a, Model: emb.Model()}); n != 45 {
		t.Fatalf("cache holds %d vectors, want 45", n)
	}
	// Loading b evicts a under a budget that fits one scope only.
	ms.SetVectorIndexBytes(60 * vecindex.EntryBytes(64))
	if _, ok, _ := ms.cachedSearch(ctx, vecindex.Key{Scope: b, Model: emb.Model()}, q[0], memory.Filter{}, 10); !ok {
		t.Fatal("scope b not cached")
	}
	if _, loaded := ms.vc.Len(vecindex.Key{Scope: a, Model: emb.Model()}); loaded {
		t.Fatal("scope a not evicted")
	}
	// Over budget: not cached, searches still work by scanning.
	ms.SetVectorIndexBytes(10 * vecindex.EntryBytes(64))
	if _, ok, _ := ms.cachedSearch(ctx, vecindex.Key{Scope: a, Model: emb.Model()}, q[0], memory.Filter{}, 10); ok {
		t.Fatal("scope a cached over budget")
	}
	res, err := svc.Search(ctx, memory.SearchRequest{Scope: a, Query: "tomatoes basil", Mode: memory.ModeVector, TopK: 5})
	if err != nil || len(res) != 5 {
		t.Fatalf("scan search: %d results, %v", len(res), err)
	}
}

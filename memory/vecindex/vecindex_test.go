package vecindex

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// TestSearchMatchesExact: the rounded scores rank like exact dot products
// (the exact top 10 is within the top 25 of the index), filters apply, and
// removals and inserts are seen; on a scope big enough to be scored on
// several cores.
func TestSearchMatchesExact(t *testing.T) {
	ctx := context.Background()
	emb := memory.NewHashEmbedder(256)
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"garden", "tomato", "basil", "deploy", "server", "invoice", "flight", "hotel", "coffee", "oven", "bread", "budget"}
	n := parallelFrom + 1000
	texts := make([]string, n)
	for i := range texts {
		texts[i] = fmt.Sprintf("%s %s %s note %d", words[r.IntN(len(words))], words[r.IntN(len(words))], words[r.IntN(len(words))], i)
	}
	vecs, _ := emb.Embed(ctx, texts)
	k := Key{Scope: store.Scope{OrgID: "o", UserID: "u"}, Model: emb.Model()}
	x := New(DefaultBudget)
	loader := func(ctx context.Context, add func(int64, []float32, Meta) error) error {
		for i, v := range vecs {
			typ := memory.TypeEpisodic
			if i%2 == 0 {
				typ = memory.TypeArchival
			}
			if err := add(int64(i+1), v, Meta{Type: typ, Created: time.Unix(int64(i), 0).UnixMicro()}); err != nil {
				return err
			}
		}
		return nil
	}
	q, _ := emb.Embed(ctx, []string{"tomato basil garden"})
	exact := func(keep func(i int) bool) []int64 {
		type sc struct {
			id int64
			s  float64
		}
		var all []sc
		for i, v := range vecs {
			if keep(i) {
				all = append(all, sc{int64(i + 1), memory.Dot(q[0], v)})
			}
		}
		sort.Slice(all, func(i, j int) bool { return all[i].s > all[j].s })
		out := make([]int64, 10)
		for i := range out {
			out[i] = all[i].id
		}
		return out
	}
	check := func(f memory.Filter, keep func(i int) bool) {
		t.Helper()
		got, ok, err := x.Search(ctx, k, q[0], f, 25, loader)
		if err != nil || !ok {
			t.Fatalf("search: ok %v, %v", ok, err)
		}
		in := map[int64]bool{}
		for _, g := range got {
			in[g.ID] = true
		}
		for _, id := range exact(keep) {
			if !in[id] {
				t.Fatalf("exact top-10 chunk %d not in the index's top 25", id)
			}
		}
	}
	check(memory.Filter{}, func(int) bool { return true })
	check(memory.Filter{Types: []string{memory.TypeArchival}}, func(i int) bool { return i%2 == 0 })
	check(memory.Filter{Before: time.Unix(5000, 0)}, func(i int) bool { return i < 5000 })

	top, _, _ := x.Search(ctx, k, q[0], memory.Filter{}, 1, nil)
	x.Remove(k.Scope, []int64{top[0].ID})
	after, _, _ := x.Search(ctx, k, q[0], memory.Filter{}, 25, nil)
	for _, a := range after {
		if a.ID == top[0].ID {
			t.Fatal("removed chunk still found")
		}
	}
	if m := x.Missing(k, []int64{top[0].ID, 1, 2}); len(m) != 1 || m[0] != top[0].ID {
		t.Fatalf("missing = %v", m)
	}
	x.Insert(k, []int64{int64(n + 10)}, [][]float32{q[0]}, []Meta{{Type: memory.TypeArchival}})
	if got, _, _ := x.Search(ctx, k, q[0], memory.Filter{}, 1, nil); len(got) != 1 || got[0].ID != int64(n+10) {
		t.Fatalf("inserted query vector not first: %+v", got)
	}
	if x.MaxID(k) != int64(n+10) {
		t.Fatalf("max id %d", x.MaxID(k))
	}
}

// TestBudget: a scope over the budget is not kept (ok false), and loading a
// second scope drops the least recently used one.
func TestBudget(t *testing.T) {
	ctx := context.Background()
	vec := make([]float32, 8)
	vec[0] = 1
	loader := func(count int) Loader {
		return func(ctx context.Context, add func(int64, []float32, Meta) error) error {
			for i := range count {
				if err := add(int64(i+1), vec, Meta{}); err != nil {
					return err
				}
			}
			return nil
		}
	}
	x := New(15 * EntryBytes(8))
	a := Key{Scope: store.Scope{OrgID: "o", UserID: "a"}, Model: "m"}
	b := Key{Scope: store.Scope{OrgID: "o", UserID: "b"}, Model: "m"}
	if _, ok, err := x.Search(ctx, a, vec, memory.Filter{}, 3, loader(10)); !ok || err != nil {
		t.Fatalf("a: ok %v %v", ok, err)
	}
	if _, ok, _ := x.Search(ctx, b, vec, memory.Filter{}, 3, loader(10)); !ok {
		t.Fatal("b not kept")
	}
	if _, loaded := x.Len(a); loaded {
		t.Fatal("a not dropped for b")
	}
	big := Key{Scope: store.Scope{OrgID: "o", UserID: "c"}, Model: "m"}
	if _, ok, _ := x.Search(ctx, big, vec, memory.Filter{}, 3, loader(20)); ok {
		t.Fatal("a scope over budget was kept")
	}
}

// BenchmarkSearch100k: one search over 100k chunks of 1024 dimensions with a
// query of 7 words (the local embedder's sparse vectors).
func BenchmarkSearch100k(b *testing.B) {
	ctx := context.Background()
	emb := memory.NewHashEmbedder(0)
	r := rand.New(rand.NewPCG(3, 4))
	x := New(DefaultBudget)
	k := Key{Scope: store.Scope{OrgID: "o", UserID: "u"}, Model: emb.Model()}
	vec := make([]float32, emb.Dim())
	_, _, _ = x.Search(ctx, k, vec, memory.Filter{}, 1, func(ctx context.Context, add func(int64, []float32, Meta) error) error {
		for i := range 100_000 {
			for d := range vec {
				vec[d] = 0
				if r.IntN(4) == 0 {
					vec[d] = r.Float32() - 0.5
				}
			}
			if err := add(int64(i+1), vec, Meta{}); err != nil {
				return err
			}
		}
		return nil
	})
	q, _ := emb.Embed(ctx, []string{"plan the kitchen budget with the oven supplier on friday"})
	b.ResetTimer()
	for range b.N {
		if _, ok, _ := x.Search(ctx, k, q[0], memory.Filter{}, 100, nil); !ok {
			b.Fatal("not loaded")
		}
	}
}

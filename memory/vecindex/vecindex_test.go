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

// TestWritesDuringLoad: while a scope loads, writes to it neither wait for
// the load nor get lost, and a search that does not want to wait is told the
// scope is not ready instead of blocking.
func TestWritesDuringLoad(t *testing.T) {
	ctx := context.Background()
	x := New(DefaultBudget)
	k := Key{Scope: store.Scope{OrgID: "o", UserID: "u"}, Model: "m"}
	unit := func(d int) []float32 {
		v := make([]float32, 8)
		v[d] = 1
		return v
	}
	started, release := make(chan struct{}), make(chan struct{})
	loadErr := make(chan error, 1)
	go func() {
		loadErr <- x.Load(ctx, k, 8, func(ctx context.Context, add func(int64, []float32, Meta) error) error {
			close(started)
			<-release // the database is slow
			for id := int64(1); id <= 3; id++ {
				if err := add(id, unit(int(id)), Meta{}); err != nil {
					return err
				}
			}
			return nil
		})
	}()
	<-started

	// These run while the load is stuck: were they to wait for it, the test
	// would hang here rather than reach release.
	x.Insert(k, []int64{10}, [][]float32{unit(5)}, []Meta{{Type: "archival"}})
	x.Remove(k.Scope, []int64{2})
	x.Insert(k, []int64{11}, [][]float32{unit(6)}, []Meta{{}})
	x.Remove(k.Scope, []int64{11})
	if _, ok, err := x.Search(ctx, k, unit(1), memory.Filter{}, 5, nil); ok || err != nil {
		t.Fatalf("a search that does not wait got ok=%v err=%v during the load", ok, err)
	}
	if err := x.Load(ctx, k, 8, nil); err != nil { // a second Load is a no-op
		t.Fatal(err)
	}
	close(release)
	if err := <-loadErr; err != nil {
		t.Fatal(err)
	}

	if n, loaded := x.Len(k); !loaded || n != 3 {
		t.Fatalf("after the load: %d vectors (loaded %v), want 1, 3 and the inserted 10", n, loaded)
	}
	for _, c := range []struct {
		dim  int
		want int64 // 0: nothing similar
	}{{1, 1}, {2, 0}, {3, 3}, {5, 10}, {6, 0}} {
		top, ok, err := x.Search(ctx, k, unit(c.dim), memory.Filter{}, 1, nil)
		if !ok || err != nil {
			t.Fatalf("search: ok %v err %v", ok, err)
		}
		got := int64(0)
		if len(top) == 1 && top[0].Score > 0.5 {
			got = top[0].ID
		}
		if got != c.want {
			t.Errorf("dimension %d: best %v, want chunk %d", c.dim, top, c.want)
		}
	}
	if top, _, _ := x.Search(ctx, k, unit(5), memory.Filter{Types: []string{"archival"}}, 1, nil); len(top) != 1 || top[0].ID != 10 {
		t.Errorf("the inserted chunk lost its metadata: %v", top)
	}
}

// TestSearchWaitsForRunningLoad: a search with a loader waits for a load
// another goroutine started rather than loading twice.
func TestSearchWaitsForRunningLoad(t *testing.T) {
	ctx := context.Background()
	x := New(DefaultBudget)
	k := Key{Scope: store.Scope{OrgID: "o", UserID: "u"}, Model: "m"}
	vec := []float32{1, 0, 0, 0}
	release := make(chan struct{})
	loads := 0
	loader := func(ctx context.Context, add func(int64, []float32, Meta) error) error {
		loads++
		<-release
		return add(7, vec, Meta{})
	}
	started := make(chan struct{})
	go func() {
		close(started)
		_ = x.Load(ctx, k, 4, loader)
	}()
	<-started
	for {
		if e := x.peek(k); e != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	go func() { time.Sleep(20 * time.Millisecond); close(release) }()
	top, ok, err := x.Search(ctx, k, vec, memory.Filter{}, 1, loader)
	if !ok || err != nil || len(top) != 1 || top[0].ID != 7 {
		t.Fatalf("search during a load: %v %v %v", top, ok, err)
	}
	if loads != 1 {
		t.Fatalf("%d loads, want 1", loads)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	k2 := Key{Scope: k.Scope, Model: "m2"}
	block := make(chan struct{})
	defer close(block)
	go func() {
		_ = x.Load(ctx, k2, 4, func(ctx context.Context, add func(int64, []float32, Meta) error) error { <-block; return nil })
	}()
	for x.peek(k2) == nil {
		time.Sleep(time.Millisecond)
	}
	if _, ok, err := x.Search(cctx, k2, vec, memory.Filter{}, 1, loader); ok || err == nil {
		t.Fatalf("a cancelled search waiting for a load: ok %v err %v, want the context's error", ok, err)
	}
}

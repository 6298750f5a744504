package memorytest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// benchWords is a vocabulary with a Zipf-like use: a few words are in most
// memories, most words in few, as in real notes.
var benchWords = strings.Fields(`project meeting deploy release customer invoice budget server database backup
	incident outage latency migration schema index query cache queue worker agent memory search vector token
	garden tomato basil kitchen recipe flour oven bread coffee tea travel flight hotel train ticket passport
	doctor appointment dentist pharmacy insurance contract lawyer tax receipt salary bonus review promotion
	team lead design document spec prototype feedback roadmap milestone deadline sprint ticket bug fix patch
	alice bob carol dave erin frank grace heidi ivan judy mallory oscar peggy trent victor walter
	monday tuesday wednesday thursday friday january february march april may june july august`)

// BenchText returns a realistic-looking note of about n words.
func BenchText(r *rand.Rand, n int) string {
	z := rand.NewZipf(r, 1.1, 2, uint64(len(benchWords)-1))
	ws := make([]string, n)
	for i := range ws {
		ws[i] = benchWords[z.Uint64()]
	}
	return fmt.Sprintf("Note %d: %s.", r.IntN(1_000_000), strings.Join(ws, " "))
}

// BenchSearch seeds n one-chunk memories into one scope (with parallel
// writers), then measures hybrid search latency (p50, p99) and the recall@10
// of the vector leg against an exact search over the same vectors.
func BenchSearch(b *testing.B, st memory.Store, n int) {
	ctx := context.Background()
	emb := memory.NewHashEmbedder(0)
	svc, err := memory.New(memory.Config{Store: st, Embedder: emb})
	if err != nil {
		b.Fatal(err)
	}
	scope := store.Scope{OrgID: "bench", UserID: "u", ProjectID: memory.NewMemoryID()}
	vecs := make(map[string][]float32, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	const writers = 8
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			var batch []memory.WriteRequest
			flush := func() bool {
				ms, err := svc.WriteBatch(ctx, batch)
				if err != nil {
					b.Error(err)
					return false
				}
				batch = batch[:0]
				for _, m := range ms {
					v, _ := emb.Embed(ctx, []string{m.Text})
					mu.Lock()
					vecs[m.ID] = v[0]
					mu.Unlock()
				}
				return true
			}
			for i := w; i < n; i += writers {
				batch = append(batch, memory.WriteRequest{Scope: scope, Type: memory.TypeArchival, Text: BenchText(r, 20+r.IntN(40))})
				if len(batch) == 50 && !flush() {
					return
				}
			}
			if len(batch) > 0 {
				flush()
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	b.Logf("seeded %d memories in %s", n, time.Since(start).Round(time.Millisecond))
	// A live store has statistics (autovacuum); a store just bulk-loaded
	// has none until this.
	if a, ok := st.(interface{ Analyze(context.Context) error }); ok {
		if err := a.Analyze(ctx); err != nil {
			b.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(99, 1))
	queries := make([]string, 200)
	for i := range queries {
		queries[i] = BenchText(r, 3+r.IntN(5))
	}
	// Recall@10 of the vector leg against exact search.
	var recall float64
	const rq = 50
	for _, q := range queries[:rq] {
		qv, _ := emb.Embed(ctx, []string{q})
		hits, err := st.VectorSearch(ctx, scope, emb.Model(), qv[0], memory.Filter{}, 10)
		if err != nil {
			b.Fatal(err)
		}
		type sc struct {
			id string
			s  float64
		}
		all := make([]sc, 0, len(vecs))
		for id, v := range vecs {
			all = append(all, sc{id, memory.Dot(qv[0], v)})
		}
		sort.Slice(all, func(i, j int) bool { return all[i].s > all[j].s })
		exact := map[string]bool{}
		for _, x := range all[:10] {
			exact[x.id] = true
		}
		got := 0
		for _, h := range hits {
			if exact[h.MemoryID] {
				got++
			}
		}
		recall += float64(got) / 10
	}
	// Each leg alone, to show where a search spends its time.
	legP50 := func(leg func(q string) error) float64 {
		ls := make([]time.Duration, 0, len(queries))
		for _, q := range queries {
			t0 := time.Now()
			if err := leg(q); err != nil {
				b.Fatal(err)
			}
			ls = append(ls, time.Since(t0))
		}
		slices.Sort(ls)
		return float64(ls[len(ls)/2].Microseconds()) / 1000
	}
	vecP50 := legP50(func(q string) error {
		qv, _ := emb.Embed(ctx, []string{q})
		_, err := st.VectorSearch(ctx, scope, emb.Model(), qv[0], memory.Filter{}, 60)
		return err
	})
	textP50 := legP50(func(q string) error {
		_, err := st.TextSearch(ctx, scope, memory.Tokenize(q), memory.Filter{}, 60)
		return err
	})
	b.ResetTimer()
	lat := make([]time.Duration, 0, b.N)
	for i := range b.N {
		t0 := time.Now()
		if _, err := svc.Search(ctx, memory.SearchRequest{Scope: scope, Query: queries[i%len(queries)], TopK: 10}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(recall/rq, "vector-recall@10")
	b.ReportMetric(vecP50, "vector-leg-p50-ms")
	b.ReportMetric(textP50, "text-leg-p50-ms")
}

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

// BenchText returns a note of about n words of the everyday vocabulary.
func BenchText(r *rand.Rand, n int) string {
	z := rand.NewZipf(r, 1.1, 2, uint64(len(benchWords)-1))
	ws := make([]string, n)
	for i := range ws {
		ws[i] = benchWords[z.Uint64()]
	}
	return fmt.Sprintf("Note %d: %s.", r.IntN(1_000_000), strings.Join(ws, " "))
}

// Corpus is the kind of text BenchSearch seeds.
type Corpus string

const (
	// CorpusEveryday is notes over the 150 everyday words alone: every note
	// shares most of its words with every other, the worst case for both
	// legs (no rare terms to narrow the full-text leg, no clusters to guide
	// the HNSW graph).
	CorpusEveryday Corpus = "everyday"
	// CorpusTopics is notes on one of 500 topics, each with its own
	// 300-word vocabulary drawn from 20,000 words, half their words being
	// everyday ones: like real notes, a note shares its rarer words with the
	// notes on its subject.
	CorpusTopics Corpus = "topics"
)

const (
	topicCount     = 500
	topicWords     = 300
	topicVocabSize = 20_000
)

// topicVocab is the fixed vocabulary of CorpusTopics: pronounceable
// pseudo-words, so the character n-grams of the embedder behave as on words.
var topicVocab = func() [][]string {
	r := rand.New(rand.NewPCG(2026, 12))
	cons := strings.Split("b c d f g h k l m n p r s t v w z br tr st ch sh th pl gr", " ")
	vows := strings.Split("a e i o u ai ea ou io", " ")
	seen := map[string]bool{}
	var vocab []string
	for len(vocab) < topicVocabSize {
		var b strings.Builder
		for range 2 + r.IntN(3) {
			b.WriteString(cons[r.IntN(len(cons))])
			b.WriteString(vows[r.IntN(len(vows))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			vocab = append(vocab, w)
		}
	}
	topics := make([][]string, topicCount)
	for i := range topics {
		topics[i] = make([]string, topicWords)
		for j := range topics[i] {
			topics[i][j] = vocab[r.IntN(len(vocab))]
		}
	}
	return topics
}()

// TopicText returns a note of about n words on a random topic: everyday words
// mixed half and half with the topic's own (Zipf-distributed within it).
func TopicText(r *rand.Rand, n int) string {
	topic := topicVocab[r.IntN(len(topicVocab))]
	zt := rand.NewZipf(r, 1.1, 2, uint64(len(topic)-1))
	ze := rand.NewZipf(r, 1.1, 2, uint64(len(benchWords)-1))
	ws := make([]string, n)
	for i := range ws {
		if r.IntN(2) == 0 {
			ws[i] = topic[zt.Uint64()]
		} else {
			ws[i] = benchWords[ze.Uint64()]
		}
	}
	return fmt.Sprintf("Note %d: %s.", r.IntN(1_000_000), strings.Join(ws, " "))
}

// text returns a note of about n words of the corpus.
func (c Corpus) text(r *rand.Rand, n int) string {
	if c == CorpusTopics {
		return TopicText(r, n)
	}
	return BenchText(r, n)
}

// VectorWarmer is a store that loads a scope's vectors in the background;
// WaitVectors starts that load if needed and waits for it.
type VectorWarmer interface {
	WaitVectors(ctx context.Context, scope store.Scope, model string, dim int) error
}

// ANNIndexer is a store whose approximate index is built when first needed:
// EnsureVectorIndex builds it now and waits.
type ANNIndexer interface {
	EnsureVectorIndex(ctx context.Context, model string, dim int) error
}

// ANN is the same database as the benchmarked store searched through its
// approximate index only, under a name for the report (e.g. "ef400").
type ANN struct {
	Name  string
	Store memory.Store
}

// BenchSearch seeds n one-chunk memories of the corpus into one scope (with
// parallel writers), then measures hybrid search latency (p50, p99) and the
// recall@10 of the vector leg against an exact search over the same vectors.
// For each of anns, the recall@10 and p50 of its vector search are reported
// too.
func BenchSearch(b *testing.B, st memory.Store, corpus Corpus, n int, anns ...ANN) {
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
				batch = append(batch, memory.WriteRequest{Scope: scope, Type: memory.TypeArchival, Text: corpus.text(r, 20+r.IntN(40))})
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
		queries[i] = corpus.text(r, 3+r.IntN(5))
	}
	t0 := time.Now()
	if _, err := svc.Search(ctx, memory.SearchRequest{Scope: scope, Query: queries[0], TopK: 10}); err != nil {
		b.Fatal(err)
	}
	b.Logf("first search took %s", time.Since(t0).Round(time.Millisecond))
	if w, ok := st.(VectorWarmer); ok {
		t0 := time.Now()
		if err := w.WaitVectors(ctx, scope, emb.Model(), emb.Dim()); err != nil {
			b.Fatal(err)
		}
		b.Logf("loading the scope's vectors took %s more (searches used the ANN index meanwhile)", time.Since(t0).Round(time.Millisecond))
	}
	// Recall@10 of a vector leg against exact search.
	const rq = 50
	recallOf := func(vs memory.Store) float64 {
		var recall float64
		for _, q := range queries[:rq] {
			qv, _ := emb.Embed(ctx, []string{q})
			hits, err := vs.VectorSearch(ctx, scope, emb.Model(), qv[0], memory.Filter{}, 10)
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
		return recall / rq
	}
	recall := recallOf(st)
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
	annRecall := make([]float64, len(anns))
	annP50 := make([]float64, len(anns))
	for i, ann := range anns {
		if ix, ok := ann.Store.(ANNIndexer); ok {
			if err := ix.EnsureVectorIndex(ctx, emb.Model(), emb.Dim()); err != nil {
				b.Fatal(err)
			}
		}
		annRecall[i] = recallOf(ann.Store)
		annP50[i] = legP50(func(q string) error {
			qv, _ := emb.Embed(ctx, []string{q})
			_, err := ann.Store.VectorSearch(ctx, scope, emb.Model(), qv[0], memory.Filter{}, 60)
			return err
		})
	}
	// In a sub-benchmark, so the seeding above runs once, not once per b.N.
	b.Run("hybrid", func(b *testing.B) {
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
		b.ReportMetric(recall, "vector-recall@10")
		for i, ann := range anns {
			b.ReportMetric(annRecall[i], "hnsw-"+ann.Name+"-recall@10")
			b.ReportMetric(annP50[i], "hnsw-"+ann.Name+"-p50-ms")
		}
		b.ReportMetric(vecP50, "vector-leg-p50-ms")
		b.ReportMetric(textP50, "text-leg-p50-ms")
	})
}

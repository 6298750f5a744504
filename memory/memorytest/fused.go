package memorytest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// goFusion is a store whose searches fuse in Go: it hides FusedSearch. When
// vec is set, its vector leg returns *vec instead of searching, so that both
// paths fuse the same hits, including ones no vector search gives (scores
// <= 0, a memory's later chunk before its first, a chunk since deleted).
type goFusion struct {
	memory.Store
	lazy memory.LazySearcher
	vec  *[]memory.Hit
}

func (g goFusion) VectorSearch(ctx context.Context, scope store.Scope, model string, v []float32, f memory.Filter, limit int) ([]memory.Hit, error) {
	if g.vec != nil {
		return *g.vec, nil
	}
	return g.Store.VectorSearch(ctx, scope, model, v, f, limit)
}

func (g goFusion) VectorSearchLazy(ctx context.Context, scope store.Scope, model string, v []float32, f memory.Filter, limit int) ([]memory.Hit, error) {
	if g.vec != nil {
		return *g.vec, nil
	}
	return g.lazy.VectorSearchLazy(ctx, scope, model, v, f, limit)
}

func (g goFusion) TextSearchLazy(ctx context.Context, scope store.Scope, tokens []string, f memory.Filter, limit int) ([]memory.Hit, error) {
	return g.lazy.TextSearchLazy(ctx, scope, tokens, f, limit)
}

func (g goFusion) FillHits(ctx context.Context, scope store.Scope, hits []memory.Hit) ([]memory.Hit, error) {
	return g.lazy.FillHits(ctx, scope, hits)
}

// sqlFusion is goFusion with the store's FusedSearch, counted.
type sqlFusion struct {
	goFusion
	fs    memory.FusedSearcher
	calls *atomic.Int64
}

func (s sqlFusion) FusedSearch(ctx context.Context, scope store.Scope, tokens []string, vec []memory.Hit, limit, topK int, fu memory.Fusion) ([]memory.FusedHit, error) {
	s.calls.Add(1)
	return s.fs.FusedSearch(ctx, scope, tokens, vec, limit, topK, fu)
}

// testFusedSearchAgrees: on a store that fuses in one statement
// (memory.FusedSearcher), Search gives what Go's fusion gives for the same
// legs (ids, order, scores, chunks, found_by, snippets, sources), over a
// corpus of few words (many shared terms, duplicate memories: ties), several
// chunks a memory, for both fusion methods, with the vector leg's real hits,
// with none, and with made-up ones.
func testFusedSearchAgrees(t *testing.T, st memory.Store) {
	fs, ok := st.(memory.FusedSearcher)
	if !ok {
		t.Skip("the store fuses in Go")
	}
	lazy, ok := st.(memory.LazySearcher)
	if !ok {
		t.Skip("a FusedSearcher that is no LazySearcher")
	}
	ctx := context.Background()
	emb := memory.NewHashEmbedder(64)
	chunker := memory.Chunker{MaxRunes: 70, OverlapRunes: 20}
	writer, err := memory.New(memory.Config{Store: st, Embedder: emb, Chunker: chunker})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(17, 2))
	words := strings.Fields("tomato basil pepper garden kitchen oven river bridge train ticket " +
		"invoice budget server deploy cluster backup lemon cake paris berlin")
	sentence := func() string {
		n := 2 + rng.IntN(5)
		ws := make([]string, n)
		for i := range ws {
			ws[i] = words[rng.IntN(len(words))]
		}
		return strings.Join(ws, " ") + "."
	}
	var reqs []memory.WriteRequest
	for i := range 60 {
		var b strings.Builder
		for range 1 + rng.IntN(5) {
			b.WriteString(sentence())
			b.WriteByte(' ')
		}
		req := memory.WriteRequest{Scope: scopeA, Text: b.String(), AgentID: fmt.Sprintf("a%d", i%3), Importance: float64(i%4) / 4}
		if i%5 == 0 {
			req.Type, req.GroupID = memory.TypeArchival, "g1"
			req.Metadata = map[string]string{memory.MetaSource: fmt.Sprintf("https://example.com/%d", i), memory.MetaDocHash: "h", memory.MetaPage: "2"}
		}
		reqs = append(reqs, req)
		if i%7 == 0 { // the same text again: equal scores in both legs
			reqs = append(reqs, req)
		}
	}
	written, err := writer.WriteBatch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	// Every chunk's id as the store's hits give it (a vector leg's hits
	// carry it; made-up hits get it from here).
	chunkIDs := map[string]int64{}
	all, err := st.VectorSearch(ctx, scopeA, emb.Model(), make([]float32, 64), memory.Filter{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range all {
		chunkIDs[fmt.Sprintf("%s/%d", h.MemoryID, h.Seq)] = h.ChunkID
	}
	// A memory deleted after the made-up vector leg names it.
	gone := written[len(written)-1]
	if err := writer.Delete(ctx, scopeA, gone.ID); err != nil {
		t.Fatal(err)
	}
	written = written[:len(written)-1]

	var vec []memory.Hit
	var calls atomic.Int64
	g := goFusion{Store: st, lazy: lazy}
	gOver := goFusion{Store: st, lazy: lazy, vec: &vec}
	for _, fu := range []memory.Config{
		{Fusion: memory.FusionScore},
		{Fusion: memory.FusionRRF},
		{Fusion: memory.FusionRRF, TextWeight: 1, VectorWeight: 1}, // a text rank ties the same vector rank
		{Fusion: memory.FusionScore, TextWeight: 1, VectorWeight: 1},
	} {
		services := func(g goFusion) (*memory.Service, *memory.Service) {
			mk := func(s memory.Store) *memory.Service {
				c := fu
				c.Store, c.Embedder, c.Chunker = s, emb, chunker
				svc, err := memory.New(c)
				if err != nil {
					t.Fatal(err)
				}
				return svc
			}
			return mk(g), mk(sqlFusion{goFusion: g, fs: fs, calls: &calls})
		}
		goReal, sqlReal := services(g)
		goMade, sqlMade := services(gOver)
		for q := range 60 {
			n := 1 + rng.IntN(4)
			qw := make([]string, n)
			for i := range qw {
				qw[i] = words[rng.IntN(len(words))]
			}
			if q%9 == 0 {
				qw = append(qw, "zeppelin") // in no memory
			}
			req := memory.SearchRequest{Scope: scopeA, Query: strings.Join(qw, " "), TopK: 1 + rng.IntN(8)}
			req.Candidates = 3*req.TopK + rng.IntN(20)
			if q%10 == 3 {
				req.Mode = memory.ModeFullText
			}
			goSvc, sqlSvc := goReal, sqlReal
			what := "real vector hits"
			switch q % 3 {
			case 1:
				goSvc, sqlSvc, what = goMade, sqlMade, "no vector hits"
				vec = nil
			case 2:
				goSvc, sqlSvc, what = goMade, sqlMade, "made-up vector hits"
				vec = madeUpHits(rng, written, gone, req.Candidates, chunkIDs)
			}
			before := calls.Load()
			want, err := goSvc.Search(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := sqlSvc.Search(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if calls.Load() != before+1 {
				t.Fatalf("%s fusion, query %q: the search did not fuse in the store", fu.Fusion, req.Query)
			}
			if msg := sameResults(want, got); msg != "" {
				t.Fatalf("%s fusion (weights %g/%g, 0 for the default), %s, query %q, top %d of %d: %s\nGo:    %s\nstore: %s",
					fu.Fusion, fu.TextWeight, fu.VectorWeight, what, req.Query, req.TopK, req.Candidates, msg, brief(want), brief(got))
			}
		}
	}
}

// madeUpHits is a vector leg's answer, best first: chunks of random memories
// (a memory's later chunk sometimes before its first, the deleted memory's
// chunk sometimes among them), scores from few values (ties), the last ones
// <= 0 at times.
func madeUpHits(rng *rand.Rand, ms []memory.Memory, gone memory.Memory, n int, chunkIDs map[string]int64) []memory.Hit {
	n = rng.IntN(n + 1)
	scores := make([]float64, n)
	for i := range scores {
		scores[i] = float64(rng.IntN(8)-2) / 8
	}
	// Best first, as a vector search answers.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && scores[j] > scores[j-1]; j-- {
			scores[j], scores[j-1] = scores[j-1], scores[j]
		}
	}
	out := make([]memory.Hit, n)
	for i := range out {
		m := ms[rng.IntN(len(ms))]
		if rng.IntN(15) == 0 {
			m = gone
		}
		seq := rng.IntN(m.Chunks)
		out[i] = memory.Hit{ChunkID: chunkIDs[fmt.Sprintf("%s/%d", m.ID, seq)], MemoryID: m.ID, Seq: seq, Score: scores[i],
			Type: m.Type, AgentID: m.AgentID, GroupID: m.GroupID, CreatedAt: m.CreatedAt}
	}
	return out
}

// sameResults says how got differs from want, or "".
func sameResults(want, got []memory.Result) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d results, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if math.Abs(w.Score-g.Score) > 1e-12*math.Max(1, math.Abs(w.Score)) {
			return fmt.Sprintf("result %d: score %v, want %v", i, g.Score, w.Score)
		}
		g.Score = w.Score
		if !reflect.DeepEqual(w, g) {
			return fmt.Sprintf("result %d: %+v, want %+v", i, g, w)
		}
	}
	return ""
}

func brief(rs []memory.Result) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s#%d %.6f %v; ", r.ID[len(r.ID)-6:], r.Chunk, r.Score, r.FoundBy)
	}
	return b.String()
}

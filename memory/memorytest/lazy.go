package memorytest

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/openintern/openintern/memory"
)

// testLazySearchAgrees: a LazySearcher's lazy legs find what its eager legs
// find (the vector leg's scores may be rounded, within 2e-3), with every
// field a fusion needs, and FillHits then reads what the eager legs read;
// FillHits drops a hit whose chunk is gone or lies in another scope.
func testLazySearchAgrees(t *testing.T, st memory.Store) {
	lazy, ok := st.(memory.LazySearcher)
	if !ok {
		t.Skip("the store has no lazy search legs")
	}
	ctx := context.Background()
	emb := memory.NewHashEmbedder(64)
	svc := newService(t, st, emb)
	var reqs []memory.WriteRequest
	for i := range 40 {
		req := memory.WriteRequest{Scope: scopeA, AgentID: fmt.Sprintf("a%d", i%3), Importance: float64(i%4) / 4,
			Text: fmt.Sprintf("note %d: the garden's tomato %d and basil %d, pepper %d", i, i%7, i%5, i%3)}
		if i%4 == 0 {
			req.Type, req.GroupID = memory.TypeArchival, "g1"
			req.Metadata = map[string]string{memory.MetaSource: fmt.Sprintf("https://example.com/%d", i)}
		}
		reqs = append(reqs, req)
	}
	if _, err := svc.WriteBatch(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	other, err := svc.Write(ctx, memory.WriteRequest{Scope: scopeB, Text: "the garden's tomato in another scope"})
	if err != nil {
		t.Fatal(err)
	}

	same := func(what string, lazyHit, eager memory.Hit) {
		t.Helper()
		if lazyHit.MemoryID != eager.MemoryID || lazyHit.Seq != eager.Seq || lazyHit.ChunkID != eager.ChunkID ||
			lazyHit.Type != eager.Type || lazyHit.AgentID != eager.AgentID || lazyHit.GroupID != eager.GroupID ||
			!lazyHit.CreatedAt.Equal(eager.CreatedAt) {
			t.Fatalf("%s: lazy hit %+v, eager %+v", what, lazyHit, eager)
		}
	}
	filled := func(what string, hits []memory.Hit, eager map[string]memory.Hit) {
		t.Helper()
		got, err := lazy.FillHits(ctx, scopeA, hits)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(hits) {
			t.Fatalf("%s: FillHits kept %d of %d hits", what, len(got), len(hits))
		}
		for i, h := range got {
			e := eager[h.MemoryID]
			if h.MemoryID != hits[i].MemoryID || h.Text == "" || h.Text != e.Text || h.Importance != e.Importance ||
				!reflect.DeepEqual(h.Metadata, e.Metadata) || h.Score != hits[i].Score {
				t.Fatalf("%s: filled hit %d = %+v, eager %+v", what, i, h, e)
			}
		}
	}

	for _, q := range []string{"tomato 3 basil", "pepper 2", "garden note 17"} {
		vec, err := emb.Embed(ctx, []string{q})
		if err != nil {
			t.Fatal(err)
		}
		all, err := st.VectorSearch(ctx, scopeA, emb.Model(), vec[0], memory.Filter{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		eager := map[string]memory.Hit{}
		for _, h := range all {
			eager[h.MemoryID] = h
		}
		vhits, err := lazy.VectorSearchLazy(ctx, scopeA, emb.Model(), vec[0], memory.Filter{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(vhits) != 10 {
			t.Fatalf("%q: %d lazy vector hits, want 10", q, len(vhits))
		}
		for i, h := range vhits {
			e, ok := eager[h.MemoryID]
			if !ok || math.Abs(h.Score-e.Score) > 2e-3 {
				t.Fatalf("%q: lazy vector hit %d %+v, eager %+v", q, i, h, e)
			}
			same(q+" (vector)", h, e)
			if i > 0 && h.Score > vhits[i-1].Score {
				t.Fatalf("%q: lazy vector hits out of order: %v after %v", q, h.Score, vhits[i-1].Score)
			}
			if i == 9 && all[9].Score-h.Score > 2e-3 {
				t.Fatalf("%q: the 10th lazy hit scores %v, the 10th eager %v", q, h.Score, all[9].Score)
			}
		}
		filled(q+" (vector)", vhits, eager)

		tokens := memory.UniqueTokens(memory.Tokenize(q))
		thits, err := st.TextSearch(ctx, scopeA, tokens, memory.Filter{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		tlazy, err := lazy.TextSearchLazy(ctx, scopeA, tokens, memory.Filter{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(thits) == 0 || len(tlazy) != len(thits) {
			t.Fatalf("%q: %d lazy text hits, %d eager", q, len(tlazy), len(thits))
		}
		for i := range thits {
			same(q+" (text)", tlazy[i], thits[i])
			if tlazy[i].Score != thits[i].Score {
				t.Fatalf("%q: lazy text hit %d scores %v, eager %v", q, i, tlazy[i].Score, thits[i].Score)
			}
		}
		filled(q+" (text)", tlazy, eager)
	}

	// A hit whose memory is gone, and one of another scope, are dropped.
	vec, err := emb.Embed(ctx, []string{"tomato"})
	if err != nil {
		t.Fatal(err)
	}
	hits, err := lazy.VectorSearchLazy(ctx, scopeA, emb.Model(), vec[0], memory.Filter{}, 3)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := st.VectorSearch(ctx, scopeB, emb.Model(), vec[0], memory.Filter{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 3 || len(theirs) != 1 || theirs[0].MemoryID != other.ID {
		t.Fatalf("hits %+v, other scope's %+v", hits, theirs)
	}
	if err := svc.Delete(ctx, scopeA, hits[1].MemoryID); err != nil {
		t.Fatal(err)
	}
	stranger := theirs[0]
	for _, h := range []*memory.Hit{&hits[0], &hits[1], &hits[2], &stranger} {
		h.Text = "" // lazy hits, to be filled (a store may have given the texts anyway)
	}
	got, err := lazy.FillHits(ctx, scopeA, []memory.Hit{hits[0], hits[1], stranger, hits[2]})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].MemoryID != hits[0].MemoryID || got[1].MemoryID != hits[2].MemoryID || got[0].Text == "" || got[1].Text == "" {
		t.Fatalf("FillHits = %+v, want %s and %s filled", got, hits[0].MemoryID, hits[2].MemoryID)
	}
}

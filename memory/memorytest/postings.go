package memorytest

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/openintern/openintern/memory"
)

// testTextSearchPathsAgree: where no term has more postings than the
// unfiltered search reads, the unfiltered (top postings) and the filtered
// (whole lists joined to memories) queries rank the same chunks the same way.
// Past that depth, the unfiltered one reads the best-weighted postings: short
// chunks (higher BM25 impact) beat long ones with the same term.
func testTextSearchPathsAgree(t *testing.T, ms memory.Store) {
	ctx := context.Background()
	svc := newService(t, ms, memory.NewHashEmbedder(64))
	scope := scopeA
	var reqs []memory.WriteRequest
	for i := range 120 {
		reqs = append(reqs, memory.WriteRequest{Scope: scope, Type: memory.TypeArchival,
			Text: fmt.Sprintf("note %d on the garden: tomato %d, basil %d, pepper %d", i, i%7, i%5, i%3)})
	}
	if _, err := svc.WriteBatch(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	tokens := memory.UniqueTokens(memory.Tokenize("tomato 3 basil pepper"))
	plain, err := ms.TextSearch(ctx, scope, tokens, memory.Filter{}, 20)
	if err != nil {
		t.Fatal(err)
	}
	filtered, err := ms.TextSearch(ctx, scope, tokens, memory.Filter{Types: []string{memory.TypeArchival}}, 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != 20 || len(filtered) != 20 {
		t.Fatalf("%d and %d hits, want 20 each", len(plain), len(filtered))
	}
	for i := range plain {
		if plain[i].MemoryID != filtered[i].MemoryID || plain[i].Score-filtered[i].Score > 1e-9 || filtered[i].Score-plain[i].Score > 1e-9 {
			t.Fatalf("hit %d: unfiltered %s %.6f, filtered %s %.6f", i, plain[i].MemoryID, plain[i].Score, filtered[i].MemoryID, filtered[i].Score)
		}
	}

	// One short chunk with "aubergine", then more than memory.PostingsDepth long
	// ones: the short one is the oldest, outside the newest memory.PostingsDepth,
	// but first by impact.
	short, err := svc.Write(ctx, memory.WriteRequest{Scope: scope, Text: "aubergine"})
	if err != nil {
		t.Fatal(err)
	}
	var long []memory.WriteRequest
	for i := range memory.PostingsDepth + 50 {
		long = append(long, memory.WriteRequest{Scope: scope, Text: fmt.Sprintf(
			"aubergine %d with many other words about cooking, ovens, recipes, kitchens, spices, markets and dinners %d", i, i)})
	}
	if _, err := svc.WriteBatch(ctx, long); err != nil {
		t.Fatal(err)
	}
	hits, err := ms.TextSearch(ctx, scope, []string{"aubergine"}, memory.Filter{}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 5 || hits[0].MemoryID != short.ID {
		t.Fatalf("hits = %+v, want %s first", hits, short.ID)
	}

	// A search left with one term reads only as many of its postings as it
	// returns (memory.RankDepth): they must still be the best chunks, in the
	// order of a search that reads the whole list.
	plain, err = ms.TextSearch(ctx, scope, []string{"aubergine", "absent"}, memory.Filter{}, 20)
	if err != nil {
		t.Fatal(err)
	}
	filtered, err = ms.TextSearch(ctx, scope, []string{"aubergine", "absent"}, memory.Filter{Types: []string{memory.TypeEpisodic}}, 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != 20 || len(filtered) != 20 {
		t.Fatalf("one term: %d and %d hits, want 20 each", len(plain), len(filtered))
	}
	for i := range plain {
		if plain[i].MemoryID != filtered[i].MemoryID || math.Abs(plain[i].Score-filtered[i].Score) > 1e-9 {
			t.Fatalf("one term, hit %d: read to its depth %s %v, read whole %s %v", i, plain[i].MemoryID, plain[i].Score, filtered[i].MemoryID, filtered[i].Score)
		}
	}
}

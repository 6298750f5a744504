package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/memory"
)

// retrievalSets is where the evaluation sets live (outside the repository:
// their licences forbid shipping them). OPENINTERN_RETRIEVAL_SETS overrides.
func retrievalSets(t *testing.T) string {
	if d := os.Getenv("OPENINTERN_RETRIEVAL_SETS"); d != "" {
		return d
	}
	d, err := filepath.Abs("../../../shared/data/retrieval")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d, "nfcorpus", "qrels.tsv")); err != nil {
		t.Fatalf("retrieval sets not found at %s (set OPENINTERN_RETRIEVAL_SETS): %v", d, err)
	}
	return d
}

// TestEvalRetrievalSlice keeps retrieval quality from regressing silently: on
// a slice of each set and on both stores, hybrid search is at least as good
// as each single leg, and above a floor set a little under today's figures.
func TestEvalRetrievalSlice(t *testing.T) {
	if testing.Short() {
		t.Skip("loads thousands of documents")
	}
	dir := retrievalSets(t)
	floors := map[string]float64{"nfcorpus": 0.30, "rgb-zh": 0.60} // hybrid nDCG@10 on the slice
	for _, set := range []string{"nfcorpus", "rgb-zh"} {
		for _, st := range []string{"sqlite", "postgres"} {
			t.Run(set+"/"+st, func(t *testing.T) {
				o := evalOptions{Set: filepath.Join(dir, set), Store: st, Queries: 30}
				if st == "postgres" {
					o.DatabaseURL = testenv.PostgresURL(t)
				}
				rep, err := runRetrievalEval(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				h, v, f := rep.Methods[memory.ModeHybrid], rep.Methods[memory.ModeVector], rep.Methods[memory.ModeFullText]
				t.Logf("%d queries: vector %.4f/%.4f fulltext %.4f/%.4f hybrid %.4f/%.4f (nDCG@10/Recall@10)",
					rep.Queries, v.NDCG10, v.Recall10, f.NDCG10, f.Recall10, h.NDCG10, h.Recall10)
				if rep.Queries != 30 {
					t.Errorf("queries = %d", rep.Queries)
				}
				// A 30-query slice is noisy (one query moves the mean by
				// ~0.03); on the full sets hybrid is above both legs.
				const slack = 0.015
				if h.NDCG10 < v.NDCG10-slack || h.NDCG10 < f.NDCG10-slack {
					t.Errorf("hybrid nDCG@10 %.4f below a single method (vector %.4f, fulltext %.4f)", h.NDCG10, v.NDCG10, f.NDCG10)
				}
				if h.NDCG10 < floors[set] {
					t.Errorf("hybrid nDCG@10 %.4f under the floor %.2f", h.NDCG10, floors[set])
				}
			})
		}
	}
}

package memory

import (
	"math"
	"sort"
)

// TermDF is a query term with its document frequency (chunks containing it).
type TermDF struct {
	Term string
	DF   int64
}

// Full-text pruning limits (see SelectTerms).
const (
	// MaxQueryTerms is how many of a query's rarest terms the full-text leg
	// uses (long Chinese queries have dozens of bigrams).
	MaxQueryTerms = 16
	// CommonTermShare: a term in more than this share of the chunks is
	// dropped from the full-text leg. Its BM25 idf is under log(1+1/0.3-1)
	// ≈ 0.85, against ≈ 8 for a term in a few chunks of 10k, so it barely
	// moves the ranking, yet every chunk containing it must be scored.
	CommonTermShare = 0.3
	// MaxMatchedChunks bounds the sum of the kept terms' document
	// frequencies, so a full-text search scores a bounded number of chunks
	// however large the scope grows.
	MaxMatchedChunks = 4000
)

// How much of a term's posting list a store's full-text leg reads.
const (
	// PostingsDepth is how many of a term's best-weighted postings an
	// unfiltered search reads (at least 4 × the results asked for). A chunk
	// outside every term's top postings is not found, and one outside some
	// term's top postings misses that term's share of its score; for a term
	// in fewer chunks than this the search is exact.
	PostingsDepth = 400
	// FilteredPostingsDepth bounds the postings of one term that a filtered
	// search reads: it reads whole lists, since a filter may drop the
	// best-weighted postings.
	FilteredPostingsDepth = 20_000
)

// PostingsPlan is what a store's full-text leg reads for a search of limit
// results over n chunks: the terms to match (of terms, with their document
// frequencies) and how many postings of each. Unfiltered, the rarest terms
// and their best PostingsDepth postings (SelectRankTerms); filtered, whole
// posting lists of terms whose frequencies add up to a bounded size
// (SelectTerms), since a filter may drop the best-weighted postings.
func PostingsPlan(terms []TermDF, n int64, filtered bool, limit int) (kept []TermDF, depth int) {
	if filtered {
		return SelectTerms(terms, n), FilteredPostingsDepth
	}
	kept = SelectRankTerms(terms, n)
	return kept, RankDepth(len(kept), limit)
}

// RankDepth is how many of each term's best postings an unfiltered search
// of limit results over terms terms reads (see PostingsDepth).
func RankDepth(terms, limit int) int {
	if terms == 1 {
		return limit
	}
	return max(PostingsDepth, 4*limit)
}

// IDF is the BM25 inverse document frequency of a term in df of n chunks.
func IDF(df, n int64) float64 {
	return math.Log(1 + (float64(n)-float64(df)+0.5)/(float64(df)+0.5))
}

// SelectRankTerms keeps the query terms a ranked (top-k) full-text search
// reads: the rarest first, at most MaxQueryTerms, without terms in more than
// CommonTermShare of the n chunks (the rarest term present is always kept).
// A store that reads only the best-weighted postings of each term needs no
// bound on their document frequencies, unlike SelectTerms.
func SelectRankTerms(terms []TermDF, n int64) []TermDF {
	present := presentByDF(terms)
	var out []TermDF
	for i, t := range present {
		if i > 0 && (len(out) == MaxQueryTerms || float64(t.DF) > CommonTermShare*float64(n)) {
			break
		}
		out = append(out, t)
	}
	return out
}

// presentByDF returns the terms with df > 0, rarest first.
func presentByDF(terms []TermDF) []TermDF {
	var present []TermDF
	for _, t := range terms {
		if t.DF > 0 {
			present = append(present, t)
		}
	}
	sort.SliceStable(present, func(i, j int) bool { return present[i].DF < present[j].DF })
	return present
}

// SelectTerms keeps the query terms worth matching: the rarest first, at most
// MaxQueryTerms, without terms in more than CommonTermShare of the n chunks,
// and stopping before the kept terms' frequencies add up to more than
// MaxMatchedChunks. The rarest term present is always kept, so a query made
// only of common words still finds something. Terms with df 0 are dropped.
func SelectTerms(terms []TermDF, n int64) []TermDF {
	present := presentByDF(terms)
	var out []TermDF
	var sum int64
	for i, t := range present {
		if i > 0 {
			if len(out) == MaxQueryTerms || float64(t.DF) > CommonTermShare*float64(n) || sum+t.DF > MaxMatchedChunks {
				break
			}
		}
		out = append(out, t)
		sum += t.DF
	}
	return out
}

// Impact is a term's BM25 weight in a chunk without its idf (k1 = 1.2,
// b = 0.75), tf being the term's count in the chunk and terms the chunk's
// number of distinct terms, against a fixed pivot length of 64: a pivot that
// followed the scope's mean length would change every stored weight as the
// scope grows. The PostgreSQL function memory_impact computes the same value.
func Impact(tf, terms int) float64 {
	// Each conversion rounds, so no compiler fuses these operations and a
	// SQL engine evaluating the same expression in the same order gets the
	// same double.
	norm := float64(0.25 + float64(0.75*float64(terms))/64.0)
	return float64(float64(tf)*2.2) / float64(float64(tf)+float64(1.2*norm))
}

// ChunkImpacts is the Impact of each distinct term of a chunk's tokens.
func ChunkImpacts(tokens []string) map[string]float64 {
	tf := make(map[string]int, len(tokens))
	for _, t := range tokens {
		tf[t]++
	}
	out := make(map[string]float64, len(tf))
	for t, n := range tf {
		out[t] = Impact(n, len(tf))
	}
	return out
}

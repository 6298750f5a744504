package memory

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
)

// Embedder turns texts into vectors of one model.
type Embedder interface {
	// Model names the vectors; a search compares only vectors of one model.
	Model() string
	// Dim is the length of every vector Embed returns.
	Dim() int
	// Embed returns one L2-normalized vector per text, in order.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// HashEmbedder is the local default embedder: feature hashing of words, word
// bigrams and character n-grams (trigrams within a word, so "statin" and
// "statins" share most features; unigrams, bigrams and trigrams of CJK runs,
// since Chinese has no spaces). It needs no network and is deterministic, and
// the character n-grams let it match paraphrases and inflections that a
// keyword index misses.
type HashEmbedder struct {
	dim int
}

// DefaultHashDim is the dimension of NewHashEmbedder(0).
const DefaultHashDim = 1024

// NewHashEmbedder returns a hashed embedder of dim dimensions (0: DefaultHashDim).
func NewHashEmbedder(dim int) *HashEmbedder {
	if dim <= 0 {
		dim = DefaultHashDim
	}
	return &HashEmbedder{dim: dim}
}

// Model is "hash-v1-<dim>": changing the features or the dimension changes the name.
func (h *HashEmbedder) Model() string { return fmt.Sprintf("hash-v1-%d", h.dim) }

// Dim returns the vector length.
func (h *HashEmbedder) Dim() int { return h.dim }

// Embed never fails except on a cancelled context.
func (h *HashEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		if i%64 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		out[i] = h.embedOne(t)
	}
	return out, nil
}

// Feature weights, tuned on the development sets.
const (
	wWord       = 1.0
	wWordBigram = 0.4
	wTrigram    = 0.5 // spread over a word's trigrams
	wCJK1       = 0.25
	wCJK2       = 1.0
	wCJK3       = 0.5
)

func (h *HashEmbedder) embedOne(text string) []float32 {
	feats := map[string]float64{}
	add := func(f string, w float64) { feats[f] += w }
	prev := ""
	visit(text, func(w string) {
		if stopwords[w] {
			return
		}
		w = Stem(w)
		add("w\x00"+w, wWord)
		if prev != "" {
			add("b\x00"+prev+"\x00"+w, wWordBigram)
		}
		prev = w
		rs := []rune("<" + w + ">")
		if n := len(rs) - 2; n > 1 {
			per := wTrigram / math.Sqrt(float64(n))
			for i := 0; i+3 <= len(rs); i++ {
				add("t\x00"+string(rs[i:i+3]), per)
			}
		}
	}, func(run []rune) {
		prev = ""
		for i := range run {
			add("c1\x00"+string(run[i]), wCJK1)
			if i+2 <= len(run) {
				add("c2\x00"+string(run[i:i+2]), wCJK2)
			}
			if i+3 <= len(run) {
				add("c3\x00"+string(run[i:i+3]), wCJK3)
			}
		}
	})
	v := make([]float64, h.dim)
	for f, w := range feats {
		hs := fnv.New64a()
		_, _ = hs.Write([]byte(f))
		x := hs.Sum64()
		// Sublinear in repetition: a word said ten times is not ten times as relevant.
		val := math.Log1p(w)
		if x>>63 == 1 {
			val = -val
		}
		v[x%uint64(h.dim)] += val
	}
	return normalize(v)
}

func normalize(v []float64) []float32 {
	var n float64
	for _, x := range v {
		n += x * x
	}
	out := make([]float32, len(v))
	if n == 0 {
		return out
	}
	n = math.Sqrt(n)
	for i, x := range v {
		out[i] = float32(x / n)
	}
	return out
}

// Dot is the inner product of two vectors of one length (the cosine
// similarity of normalized vectors).
func Dot(a, b []float32) float64 {
	var s float32
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	i := 0
	var s0, s1, s2, s3 float32
	for ; i+4 <= n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < n; i++ {
		s += a[i] * b[i]
	}
	return float64(s + s0 + s1 + s2 + s3)
}

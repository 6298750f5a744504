package memory

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// snippetReference is Snippet as first written, on rune slices: the
// definition the in-place version must keep.
func snippetReference(text string, tokens []string, n int) string {
	rs := []rune(text)
	if len(rs) <= n {
		return text
	}
	lower := []rune(strings.ToLower(text))
	at := -1
	if len(lower) == len(rs) {
		ls := string(lower)
		for _, t := range tokens {
			if i := strings.Index(ls, t); i >= 0 {
				at = utf8.RuneCountInString(ls[:i])
				break
			}
		}
	}
	start := 0
	if at > n/3 {
		start = at - n/3
	}
	end := min(start+n, len(rs))
	start = max(0, end-n)
	out := strings.TrimSpace(string(rs[start:end]))
	if start > 0 {
		out = "…" + out
	}
	if end < len(rs) {
		out += "…"
	}
	return out
}

// TestSnippetKeepsItsDefinition: over texts of ASCII, Chinese, letters whose
// lower case has another length (İ), spaces at the cut and invalid bytes,
// with the token anywhere or nowhere, Snippet cuts what the rune-slice
// version cuts.
func TestSnippetKeepsItsDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	pieces := []string{"tomato ", "basil", " ", "记忆", "检索 ", "İstanbul ", "Ünïcödé ", "\xff", "pepper", "\n", "a"}
	tokens := [][]string{{"tomato"}, {"记忆"}, {"istanbul", "pepper"}, {"absent"}, nil, {"basil"}}
	for i := range 3000 {
		var b strings.Builder
		for range rng.IntN(60) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		text, toks, n := b.String(), tokens[rng.IntN(len(tokens))], 1+rng.IntN(40)
		if got, want := Snippet(text, toks, n), snippetReference(text, toks, n); got != want {
			t.Fatalf("case %d: Snippet(%q, %q, %d) = %q, want %q", i, text, toks, n, got, want)
		}
	}
}

func BenchmarkSnippet(b *testing.B) {
	text := strings.Repeat("Run 7f3a. Asked: bench turn, nonce 086de5-t2999: answer with the nonce. Answered: 086de5-t2999. ", 16)
	tokens := []string{"t2999", "nonce"}
	b.ReportAllocs()
	for b.Loop() {
		Snippet(text, tokens, 240)
	}
}

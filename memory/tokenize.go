package memory

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxTokenBytes bounds a word token; longer runs (base64, hashes) are cut so
// no index entry gets large.
const maxTokenBytes = 64

// isCJK reports whether r is written without spaces between words: Han,
// Hiragana, Katakana and Hangul. Such runs are indexed as character bigrams.
func isCJK(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) ||
		unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r)
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
}

// stopwords are English function words dropped from the full-text index and
// queries: they match nearly every chunk, which makes OR queries slow and
// adds nothing to ranking.
var stopwords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an and are as at be been but by can could did do does for from had has have he her his
	how i if in into is it its me my no not of on or our she so than that the their them then there these they this
	those to too was we were what when where which who whom why will with would you your yours about after before
	should shall may might must am also any some such only own same very just over under again further once here
	both each few more most other nor s t don doesn isn aren wasn weren`) {
		m[w] = true
	}
	return m
}()

// IsStopword reports whether the lowercased word w is dropped by Tokenize.
func IsStopword(w string) bool { return stopwords[w] }

// Tokenize splits text into full-text tokens: lowercased words (letters and
// digits, English stop words dropped) and, for CJK runs, overlapping
// character bigrams (a lone CJK character is its own token). Queries and
// documents go through the same function, so the stores index and match Go
// tokens verbatim.
func Tokenize(text string) []string {
	var out []string
	visit(text, func(word string) {
		if !stopwords[word] {
			out = append(out, Stem(word))
		}
	}, func(run []rune) {
		if len(run) == 1 {
			out = append(out, string(run))
			return
		}
		for i := 0; i+1 < len(run); i++ {
			out = append(out, string(run[i:i+2]))
		}
	})
	return out
}

// visit walks text calling word for each lowercased non-CJK word and cjk for
// each run of CJK characters.
func visit(text string, word func(string), cjk func([]rune)) {
	var wb strings.Builder
	var run []rune
	flushWord := func() {
		if wb.Len() > 0 {
			w := wb.String()
			if len(w) > maxTokenBytes {
				w = truncateUTF8(w, maxTokenBytes)
			}
			word(w)
			wb.Reset()
		}
	}
	flushRun := func() {
		if len(run) > 0 {
			cjk(run)
			run = run[:0]
		}
	}
	for _, r := range text {
		switch {
		case isCJK(r):
			flushWord()
			run = append(run, r)
		case isWordRune(r):
			flushRun()
			wb.WriteRune(unicode.ToLower(r))
		default:
			flushWord()
			flushRun()
		}
	}
	flushWord()
	flushRun()
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// UniqueTokens returns tokens without repeats, in first-seen order.
func UniqueTokens(tokens []string) []string {
	seen := make(map[string]bool, len(tokens))
	out := make([]string, 0, len(tokens))
	for _, t := range tokens {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// Stem is a light English plural stemmer ("statins" → "statin", "studies" →
// "study"): it folds the commonest inflection without the over-stemming of a
// full Porter stemmer, and leaves non-ASCII words alone.
func Stem(w string) string {
	n := len(w)
	if n <= 3 || w[n-1] != 's' || w[0] >= utf8.RuneSelf {
		return w
	}
	switch {
	case strings.HasSuffix(w, "ies") && n > 4:
		return w[:n-3] + "y"
	case strings.HasSuffix(w, "ss"), strings.HasSuffix(w, "us"), strings.HasSuffix(w, "is"):
		return w
	}
	return w[:n-1]
}

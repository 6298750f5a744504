package memory

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// tokenizerSeeds mix scripts the way real notes do: CJK runs next to Latin
// words, emoji, combining marks, full-width forms, invalid UTF-8 and NUL.
var tokenizerSeeds = []string{
	"",
	"the gate code is 8812",
	"门禁密码是8812，别忘了",
	"会议在 Room 4B 举行 🎉 at 3pm",
	"東京タワーへ行きました。서울에서 만나요!",
	"naïve café résumé — déjà vu",
	"e\u0301cole", // e + combining acute
	"ＦＵＬＬ　ｗｉｄｔｈ　ＡＢＣ１２３",
	"👩‍👩‍👧‍👦 family emoji ZWJ",
	"\xff\xfe broken \xc3 utf8 \xe4\xb8",
	"nul\x00in\x00text 中\x00文",
	strings.Repeat("a", 200) + " " + strings.Repeat("中", 50),
	"İstanbul ΣΊΣΥΦΟΣ straße",
	"statins studies glasses",
}

// FuzzTokenize checks what the full-text index relies on for any input:
// tokens are valid, bounded, made only of word or CJK characters, the same
// every time, and text joined by a space tokenizes as its parts do.
func FuzzTokenize(f *testing.F) {
	for i, s := range tokenizerSeeds {
		f.Add(s, tokenizerSeeds[(i+1)%len(tokenizerSeeds)])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ta := Tokenize(a)
		for _, tok := range ta {
			if tok == "" {
				t.Fatalf("Tokenize(%q) gave an empty token", a)
			}
			if !utf8.ValidString(tok) {
				t.Fatalf("Tokenize(%q) gave invalid UTF-8 %q", a, tok)
			}
			if len(tok) > maxTokenBytes {
				t.Fatalf("Tokenize(%q) gave a %d-byte token", a, len(tok))
			}
			for _, r := range tok {
				if !isCJK(r) && !isWordRune(r) {
					t.Fatalf("Tokenize(%q) gave %q, with the separator %U", a, tok, r)
				}
			}
			if strings.ContainsRune(tok, 0) {
				t.Fatalf("Tokenize(%q) gave a token with NUL", a)
			}
		}
		if again := Tokenize(a); !slices.Equal(ta, again) {
			t.Fatalf("Tokenize(%q) is not deterministic: %q then %q", a, ta, again)
		}
		joined := Tokenize(a + " " + b)
		if want := append(slices.Clone(ta), Tokenize(b)...); !slices.Equal(joined, want) {
			t.Fatalf("Tokenize(%q + \" \" + %q) = %q, want the parts' tokens %q", a, b, joined, want)
		}
	})
}

// FuzzChunkerSplit checks that chunks are never empty, never over the limit
// and keep every token of the text.
func FuzzChunkerSplit(f *testing.F) {
	for _, s := range tokenizerSeeds {
		f.Add(s, 40)
	}
	f.Add("第一句。第二句！Third sentence. Fourth?\n\nNew paragraph; with a clause.", 12)
	f.Fuzz(func(t *testing.T, text string, maxRunes int) {
		if maxRunes < 8 || maxRunes > 2000 || len(text) > 20000 {
			return
		}
		c := Chunker{MaxRunes: maxRunes}
		chunks := c.Split(text)
		seen := map[string]bool{}
		for _, ch := range chunks {
			if strings.TrimSpace(ch) == "" {
				t.Fatalf("Split(%q) gave an empty chunk", text)
			}
			if n := utf8.RuneCountInString(ch); n > maxRunes+1 {
				t.Fatalf("Split(%q, %d) gave a chunk of %d runes", text, maxRunes, n)
			}
			for _, tok := range Tokenize(ch) {
				seen[tok] = true
			}
		}
		// cutLong cuts a sentence longer than a chunk at a space in its last
		// fifth, else between characters: in text whose words are separated
		// by spaces alone, a word shorter than a fifth of a chunk is never
		// cut, so it must be found whole in some chunk.
		if strings.IndexFunc(text, func(r rune) bool { return !isWordRune(r) && !isCJK(r) && !unicode.IsSpace(r) }) >= 0 {
			return
		}
		for _, tok := range Tokenize(text) {
			if seen[tok] || utf8.RuneCountInString(tok) >= maxRunes/5 || strings.IndexFunc(tok, isCJK) >= 0 {
				continue
			}
			t.Fatalf("Split(%q, %d) lost the word %q", text, maxRunes, tok)
		}
	})
}

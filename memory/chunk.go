package memory

import (
	"strings"
	"unicode"
)

// Chunker splits a memory's text into overlapping chunks of whole sentences.
type Chunker struct {
	MaxRunes     int // a chunk's size limit; default 800
	OverlapRunes int // trailing sentences of a chunk repeated at the start of the next, up to this size; default 120
}

func (c Chunker) limits() (int, int) {
	maxR, ov := c.MaxRunes, c.OverlapRunes
	if maxR <= 0 {
		maxR = 800
	}
	if ov < 0 || ov >= maxR/2 {
		ov = maxR / 4
	}
	if c.OverlapRunes == 0 {
		ov = min(120, maxR/4)
	}
	return maxR, ov
}

// Split returns the chunks of text; empty text gives none. Sentences end at
// . ! ? ; (followed by a space) and at CJK 。！？；, paragraphs at blank
// lines; a sentence longer than a chunk is cut at a space when it has one
// near the limit, else between characters (CJK text has no spaces).
func (c Chunker) Split(text string) []string {
	maxR, ov := c.limits()
	var sentences [][]rune
	for _, para := range splitParagraphs(text) {
		for _, s := range splitSentences(para) {
			sentences = append(sentences, cutLong(s, maxR)...)
		}
	}
	var chunks []string
	var cur [][]rune
	size := 0
	emit := func() {
		var b strings.Builder
		for i, s := range cur {
			if i > 0 && needsSpace(cur[i-1], s) {
				b.WriteByte(' ')
			}
			b.WriteString(string(s))
		}
		chunks = append(chunks, b.String())
	}
	fresh := true // cur holds only overlap from the previous chunk
	for _, s := range sentences {
		if size+len(s) > maxR && len(cur) > 0 {
			if !fresh {
				emit()
			}
			// Keep the trailing sentences that fit in the overlap.
			keep, ksize := 0, 0
			for i := len(cur) - 1; i >= 0 && ksize+len(cur[i]) <= ov && ksize+len(cur[i])+len(s) <= maxR; i-- {
				keep++
				ksize += len(cur[i])
			}
			cur = append([][]rune(nil), cur[len(cur)-keep:]...)
			size = ksize
		}
		cur = append(cur, s)
		size += len(s)
		fresh = false
	}
	if len(cur) > 0 && !fresh {
		emit()
	}
	return chunks
}

func needsSpace(prev, next []rune) bool {
	if len(prev) == 0 || len(next) == 0 {
		return false
	}
	return !isCJK(prev[len(prev)-1]) && !isCJKPunct(prev[len(prev)-1]) || !isCJK(next[0])
}

func splitParagraphs(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	var out []string
	for _, p := range strings.Split(text, "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func isCJKPunct(r rune) bool {
	switch r {
	case '。', '！', '？', '；', '…':
		return true
	}
	return false
}

func splitSentences(p string) [][]rune {
	rs := []rune(p)
	var out [][]rune
	start := 0
	push := func(end int) {
		s := []rune(strings.TrimSpace(string(rs[start:end])))
		if len(s) > 0 {
			out = append(out, s)
		}
		start = end
	}
	for i, r := range rs {
		switch {
		case isCJKPunct(r) || r == '\n':
			push(i + 1)
		case (r == '.' || r == '!' || r == '?' || r == ';') && (i+1 == len(rs) || unicode.IsSpace(rs[i+1])):
			push(i + 1)
		}
	}
	push(len(rs))
	return out
}

// cutLong splits a sentence longer than maxR.
func cutLong(s []rune, maxR int) [][]rune {
	var out [][]rune
	for len(s) > maxR {
		cut := maxR
		for i := maxR; i > maxR*4/5; i-- {
			if unicode.IsSpace(s[i]) {
				cut = i
				break
			}
		}
		piece := []rune(strings.TrimSpace(string(s[:cut])))
		if len(piece) > 0 {
			out = append(out, piece)
		}
		s = []rune(strings.TrimSpace(string(s[cut:])))
	}
	if len(s) > 0 {
		out = append(out, s)
	}
	return out
}

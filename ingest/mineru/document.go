package mineru

import (
	"context"
	"strings"

	"github.com/openintern/openintern/ingest"
)

// Document cuts a result into citable sections. With a content list, a
// section is the text under one heading on one page: a heading starts a
// new section, and so does a new page, so every section names the page its
// words are on and the path of headings above it. Without one, the
// Markdown is cut at its headings (no pages known).
func (r Result) Document(ctx context.Context, name string) (ingest.Document, error) {
	if len(r.Blocks) == 0 {
		doc, err := ingest.Extractor{}.Extract(ctx, "full.md", []byte(r.Markdown))
		if err != nil {
			return ingest.Document{}, err
		}
		if doc.Title == "" || doc.Title == "full.md" {
			doc.Title = name
		}
		doc.Format = ingest.FormatPDF
		return doc, nil
	}
	doc := ingest.Document{Format: ingest.FormatPDF}
	var (
		stack []string // heading path; stack[i] is the level i+1 heading
		cur   strings.Builder
		page  = -1
	)
	flush := func() {
		if strings.TrimSpace(cur.String()) != "" {
			doc.Sections = append(doc.Sections, ingest.Section{Text: strings.TrimSpace(cur.String()), Page: page + 1,
				Heading: strings.Join(nonEmpty(stack), " > ")})
		}
		cur.Reset()
	}
	for _, b := range r.Blocks {
		text := strings.TrimSpace(blockText(b))
		if text == "" {
			continue
		}
		if b.PageIdx != page {
			flush()
			page = b.PageIdx
		}
		if b.Type == "text" && b.TextLevel > 0 {
			flush()
			level := min(b.TextLevel, 6)
			if len(stack) >= level {
				stack = stack[:level-1]
			}
			for len(stack) < level-1 {
				stack = append(stack, "")
			}
			stack = append(stack, text)
			if level == 1 && doc.Title == "" {
				doc.Title = text
			}
		}
		if cur.Len() > 0 {
			cur.WriteString("\n\n")
		}
		cur.WriteString(text)
	}
	flush()
	if doc.Title == "" {
		doc.Title = name
	}
	if len(doc.Sections) == 0 {
		return ingest.Document{}, errNoText
	}
	return doc, nil
}

func nonEmpty(ss []string) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// blockText is the searchable text of a block: a table's captions and
// body (its HTML tags dropped), an image's caption, else its text.
func blockText(b Block) string {
	switch b.Type {
	case "table":
		parts := append(append([]string{}, b.TableCaption...), stripTags(b.TableBody))
		return strings.Join(append(parts, b.TableFootnote...), "\n")
	case "image":
		return strings.Join(b.ImageCaption, "\n")
	default:
		return b.Text
	}
}

func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
			b.WriteByte(' ')
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

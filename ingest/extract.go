package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Document formats Extract knows.
const (
	FormatPDF      = "pdf"
	FormatHTML     = "html"
	FormatMarkdown = "markdown"
	FormatText     = "text"
)

// Section is one citable part of a document: a page of a PDF, a section of
// Markdown or HTML under its heading path, or a whole text file.
type Section struct {
	Text    string
	Page    int    // 1-based page of a PDF; 0 otherwise
	Heading string // heading path, outermost first, joined by " > "; "" for none
}

// Document is a document's text in citable sections.
type Document struct {
	Title    string
	Format   string
	Sections []Section
	// Meta is more metadata for every section's memory (a connector's
	// revision, say); it never replaces what PutDocument sets itself.
	Meta map[string]string
}

// ErrUnsupported marks a file Extract cannot read as text (binary, an
// unknown format, not UTF-8); it is the file's fault, not the job's.
var ErrUnsupported = errors.New("unsupported file")

// Extractor turns a file into a Document.
type Extractor struct {
	// PDFToText is the path of poppler's pdftotext; "" looks it up in PATH.
	PDFToText string
}

// Format is the format of a file by its name and, when the name says
// nothing certain, its first bytes (a sniff as net/http does it): a renamed
// PDF is still a PDF, and a ".txt" that is a PDF is read as one.
func Format(name string, data []byte) (string, error) {
	if bytes.HasPrefix(data, []byte("%PDF-")) {
		return FormatPDF, nil
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".pdf":
		return "", fmt.Errorf("%s is named .pdf but is not a PDF: %w", name, ErrUnsupported)
	case ".html", ".htm", ".xhtml":
		return FormatHTML, nil
	case ".md", ".markdown", ".mdown", ".mkd":
		return FormatMarkdown, nil
	case ".txt", ".text", ".log", ".csv", ".rst", ".org", "":
	default:
		if ct := http.DetectContentType(data); !strings.HasPrefix(ct, "text/") {
			return "", fmt.Errorf("%s (%s): %w", name, ct, ErrUnsupported)
		}
	}
	if ct := http.DetectContentType(data); strings.HasPrefix(ct, "text/html") {
		return FormatHTML, nil
	}
	return FormatText, nil
}

// Extract reads a file of any known format into sections.
func (e Extractor) Extract(ctx context.Context, name string, data []byte) (Document, error) {
	format, err := Format(name, data)
	if err != nil {
		return Document{}, err
	}
	title := filepath.Base(name)
	var doc Document
	switch format {
	case FormatPDF:
		doc, err = e.pdf(ctx, data)
	default:
		var text string
		text, err = textOf(name, data)
		if err != nil {
			return Document{}, err
		}
		switch format {
		case FormatHTML:
			doc, err = extractHTML(text)
		case FormatMarkdown:
			doc = extractMarkdown(text)
		default:
			doc = Document{Sections: []Section{{Text: text}}}
		}
	}
	if err != nil {
		return Document{}, err
	}
	doc.Format = format
	if doc.Title == "" {
		doc.Title = title
	}
	kept := doc.Sections[:0]
	for _, s := range doc.Sections {
		if s.Text = strings.TrimSpace(s.Text); s.Text != "" {
			kept = append(kept, s)
		}
	}
	doc.Sections = kept
	if len(doc.Sections) == 0 {
		return Document{}, fmt.Errorf("%s has no text: %w", name, ErrUnsupported)
	}
	return doc, nil
}

// textOf is data as text: UTF-8 (a byte-order mark dropped), with no NUL,
// which no text format holds and PostgreSQL cannot store: a file with one is
// binary, whatever its name.
func textOf(name string, data []byte) (string, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if bytes.IndexByte(data, 0) >= 0 {
		return "", fmt.Errorf("%s holds NUL bytes, so it is binary, not text: %w", name, ErrUnsupported)
	}
	if !utf8.Valid(data) {
		return "", fmt.Errorf("%s is not UTF-8 text: %w", name, ErrUnsupported)
	}
	return strings.ReplaceAll(string(data), "\r\n", "\n"), nil
}

// headingPath joins the headings of the levels above and at a section.
func headingPath(stack []string) string {
	var parts []string
	for _, h := range stack {
		if h != "" {
			parts = append(parts, h)
		}
	}
	return strings.Join(parts, " > ")
}

// setHeading puts h at level (1-based) of stack and drops deeper levels.
func setHeading(stack []string, level int, h string) []string {
	for len(stack) < level {
		stack = append(stack, "")
	}
	stack = stack[:level]
	stack[level-1] = h
	return stack
}

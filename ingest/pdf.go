package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
	"unicode/utf8"
)

// PDF text comes from poppler's pdftotext (Debian poppler-utils), run as a
// separate process. The Go candidates were weighed and not taken:
// pdfcpu (the one served here, v0.11) validates and rewrites PDFs but has no
// text extraction (its "extract content" dumps raw content-stream operators,
// with no font decoding, so words come out split or as glyph ids);
// ledongthuc/pdf (a fork of rsc.io/pdf) is not maintained and not served;
// go-pdfium needs pdfium as a native library or a WebAssembly runtime.
// pdftotext is poppler's, the text layer of most Linux PDF viewers: it
// decodes fonts and ToUnicode maps, orders text in reading order, and ends
// every page with a form feed, which is how page numbers are kept per
// section. Running it as a process also fences a hostile PDF off from the
// daemon: a crash or a runaway parse ends the process, bounded by
// pdfTimeout, not the daemon.
const pdfTimeout = 2 * time.Minute

// ErrNoPDFTool: pdftotext is not installed, so PDFs cannot be read.
var ErrNoPDFTool = errors.New("pdftotext (Debian package poppler-utils) is not installed: PDFs cannot be read")

func (e Extractor) pdf(ctx context.Context, data []byte) (Document, error) {
	tool := e.PDFToText
	if tool == "" {
		p, err := exec.LookPath("pdftotext")
		if err != nil {
			return Document{}, ErrNoPDFTool
		}
		tool = p
	}
	// pdftotext seeks in its input, so it reads a file, not a pipe.
	f, err := os.CreateTemp("", "openintern-*.pdf")
	if err != nil {
		return Document{}, fmt.Errorf("pdf: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return Document{}, fmt.Errorf("pdf: %w", err)
	}
	if err := f.Close(); err != nil {
		return Document{}, fmt.Errorf("pdf: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, pdfTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, "-enc", "UTF-8", "-q", f.Name(), "-")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return Document{}, fmt.Errorf("pdf: %w", ctx.Err())
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return Document{}, fmt.Errorf("pdf: pdftotext: %s: %w", msg, ErrUnsupported)
	}
	out := bytes.ToValidUTF8(bytes.ReplaceAll(stdout.Bytes(), []byte{0}, nil), []byte("\uFFFD"))
	var doc Document
	pages := strings.Split(string(out), "\f")
	for i, p := range pages {
		if strings.TrimSpace(p) == "" {
			continue
		}
		doc.Sections = append(doc.Sections, Section{Text: joinPDFLines(p), Page: i + 1})
	}
	if len(doc.Sections) == 0 {
		return Document{}, fmt.Errorf("pdf: no text layer (a scanned PDF needs OCR): %w", ErrUnsupported)
	}
	return doc, nil
}

// joinPDFLines joins the lines pdftotext breaks a paragraph into, keeping
// blank lines as paragraph ends, and mends words hyphenated at a line end.
func joinPDFLines(page string) string {
	var b strings.Builder
	for _, para := range strings.Split(strings.ReplaceAll(page, "\r\n", "\n"), "\n\n") {
		var words []string
		for _, line := range strings.Split(para, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			if n := len(words); n > 0 && strings.HasSuffix(words[n-1], "-") && startsLower(line) {
				words[n-1] = strings.TrimSuffix(words[n-1], "-") + line
				continue
			}
			words = append(words, line)
		}
		if len(words) > 0 {
			if b.Len() > 0 {
				b.WriteString("\n\n")
			}
			b.WriteString(strings.Join(words, " "))
		}
	}
	return b.String()
}

func startsLower(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return r >= 'a' && r <= 'z'
}

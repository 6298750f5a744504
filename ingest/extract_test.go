package ingest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/openintern/openintern/ingest"
	"github.com/openintern/openintern/internal/testpdf"
	"github.com/openintern/openintern/memory"
)

// TestFormatSniffs: the format comes from the bytes when they say PDF, from
// the name otherwise; binary content named as text, and a ".pdf" that is not
// one, are refused.
func TestFormatSniffs(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want string
	}{
		{"a.txt", "%PDF-1.4 ...", ingest.FormatPDF},
		{"a.md", "# T", ingest.FormatMarkdown},
		{"a.HTM", "<p>x</p>", ingest.FormatHTML},
		{"noext", "<!DOCTYPE html><html><body>x</body></html>", ingest.FormatHTML},
		{"notes.txt", "plain words", ingest.FormatText},
		{"a.pdf", "not a pdf", ""},
		{"a.png", "\x89PNG\r\n\x1a\n\x00\x00", ""},
	} {
		got, err := ingest.Format(tc.name, []byte(tc.data))
		if tc.want == "" {
			if !errors.Is(err, ingest.ErrUnsupported) {
				t.Errorf("Format(%s) = %q, %v; want ErrUnsupported", tc.name, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Format(%s) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestExtractRefusesBadText: NUL bytes and invalid UTF-8 in a text file are
// a per-file ErrUnsupported, never stored; a byte-order mark is dropped.
func TestExtractRefusesBadText(t *testing.T) {
	var e ingest.Extractor
	for name, data := range map[string]string{"nul.txt": "a\x00b", "latin1.txt": "caf\xe9", "empty.md": "  \n\n"} {
		if _, err := e.Extract(t.Context(), name, []byte(data)); !errors.Is(err, ingest.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
	doc, err := e.Extract(t.Context(), "bom.txt", []byte("\xef\xbb\xbfhello"))
	if err != nil || doc.Sections[0].Text != "hello" {
		t.Fatalf("bom: %+v %v", doc, err)
	}
	if _, err := e.Extract(t.Context(), "broken.pdf", []byte("%PDF-1.4\ngarbage")); !errors.Is(err, ingest.ErrUnsupported) {
		t.Fatalf("a broken PDF: %v, want ErrUnsupported", err)
	}
}

// TestFiftyPagePDF: a real 50-page PDF keeps one section per page, and a
// sentence of page 37 is found by search with page 37 in its citation.
func TestFiftyPagePDF(t *testing.T) {
	pages := make([][]string, 50)
	for i := range pages {
		pages[i] = []string{fmt.Sprintf("Chapter %d of the field manual.", i+1), "Routine notes about equipment and weather."}
	}
	pages[36] = append(pages[36], "The emperor penguin colony relocates when the sea ice breaks early.")
	doc, err := ingest.Extractor{}.Extract(t.Context(), "manual.pdf", testpdf.Make(pages))
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Sections) != 50 || doc.Sections[36].Page != 37 || !strings.Contains(doc.Sections[36].Text, "emperor penguin") {
		t.Fatalf("%d sections; page 37: %+v", len(doc.Sections), doc.Sections[36])
	}
	bothStores(t, func(t *testing.T, newEnv func(memory.Embedder) env) {
		e := newEnv(nil)
		e.runner(t, 0)
		j := e.create(t, map[string][]byte{"manuals/field.pdf": testpdf.Make(pages)}, "manuals/field.pdf")
		j = e.waitJob(t, j.ID, "ended", ended)
		if j.Counts.New != 1 {
			t.Fatalf("job: %+v", j)
		}
		hit := search(t, e, "emperor penguin colony sea ice")
		if hit.Source == nil || hit.Source.Page != 37 || hit.Source.Source != "manuals/field.pdf" {
			t.Fatalf("hit: %+v source %+v", hit, hit.Source)
		}
	})
}

package memory

import "strconv"

// Metadata keys of a memory made from an ingested document (package ingest
// writes them): where its text came from, for citations.
const (
	MetaSource  = "source"   // the file path or URL of the document
	MetaTitle   = "title"    // the document's title
	MetaPage    = "page"     // 1-based page of a PDF
	MetaHeading = "heading"  // heading path, outermost first, " > " between
	MetaDocHash = "doc_hash" // SHA-256 of the document's bytes: marks an ingested document
)

// Citation says where a search hit from an ingested document comes from.
type Citation struct {
	Source  string `json:"source"`            // file path or URL
	URL     string `json:"url,omitempty"`     // Source when it is an http(s) URL
	Title   string `json:"title,omitempty"`   // the document's title
	Page    int    `json:"page,omitempty"`    // 1-based PDF page
	Heading string `json:"heading,omitempty"` // heading path
}

// CitationOf is the citation of a memory with metadata md, nil unless it was
// ingested from a document.
func CitationOf(md map[string]string) *Citation {
	if md[MetaDocHash] == "" || md[MetaSource] == "" {
		return nil
	}
	c := &Citation{Source: md[MetaSource], Title: md[MetaTitle], Heading: md[MetaHeading]}
	if p, err := strconv.Atoi(md[MetaPage]); err == nil && p > 0 {
		c.Page = p
	}
	if isWebURL(c.Source) {
		c.URL = c.Source
	}
	return c
}

func isWebURL(s string) bool {
	return len(s) > 8 && (s[:7] == "http://" || s[:8] == "https://")
}

package ingest

import (
	"fmt"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// skipped elements hold no main content: navigation, page furniture, code
// that runs, and what is never shown.
var skipped = map[atom.Atom]bool{
	atom.Nav: true, atom.Header: true, atom.Footer: true, atom.Aside: true,
	atom.Script: true, atom.Style: true, atom.Noscript: true, atom.Template: true,
	atom.Form: true, atom.Button: true, atom.Select: true, atom.Svg: true,
	atom.Iframe: true, atom.Object: true, atom.Head: true,
}

// blocks end a line of text.
var blocks = map[atom.Atom]bool{
	atom.P: true, atom.Div: true, atom.Li: true, atom.Ul: true, atom.Ol: true, atom.Br: true,
	atom.Tr: true, atom.Table: true, atom.Section: true, atom.Article: true, atom.Main: true,
	atom.Pre: true, atom.Blockquote: true, atom.Dd: true, atom.Dt: true, atom.Td: true, atom.Th: true,
	atom.Figcaption: true, atom.Hr: true,
}

// extractHTML takes a page's main content: the <main> element (else the
// <article>, else the <body>) without navigation, headers, footers, asides,
// scripts and styles (also elements marked role="navigation" or hidden), cut
// into sections at its h1-h6 headings with their heading path. The <title>
// is the title.
func extractHTML(text string) (Document, error) {
	root, err := html.Parse(strings.NewReader(text))
	if err != nil {
		return Document{}, fmt.Errorf("parse html: %w", err)
	}
	var doc Document
	if t := find(root, func(n *html.Node) bool { return n.DataAtom == atom.Title }); t != nil {
		doc.Title = strings.Join(strings.Fields(textContent(t)), " ")
	}
	main := find(root, func(n *html.Node) bool {
		return n.DataAtom == atom.Main || attr(n, "role") == "main"
	})
	if main == nil {
		main = find(root, func(n *html.Node) bool { return n.DataAtom == atom.Article })
	}
	if main == nil {
		main = find(root, func(n *html.Node) bool { return n.DataAtom == atom.Body })
	}
	if main == nil {
		main = root
	}
	var (
		stack []string
		cur   strings.Builder
	)
	flush := func() {
		if s := cleanLines(cur.String()); s != "" {
			doc.Sections = append(doc.Sections, Section{Text: s, Heading: headingPath(stack)})
		}
		cur.Reset()
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		switch n.Type {
		case html.TextNode:
			cur.WriteString(n.Data)
			return
		case html.ElementNode:
			if skipped[n.DataAtom] || hasAttr(n, "hidden") ||
				attr(n, "aria-hidden") == "true" || attr(n, "role") == "navigation" {
				return
			}
			if level := headingLevel(n.DataAtom); level > 0 {
				flush()
				h := strings.Join(strings.Fields(textContent(n)), " ")
				stack = setHeading(stack, level, h)
				cur.WriteString(h + "\n\n")
				return
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
		if n.Type == html.ElementNode && blocks[n.DataAtom] {
			cur.WriteString("\n\n")
		}
	}
	walk(main)
	flush()
	return doc, nil
}

// cleanLines collapses runs of spaces within lines and of blank lines.
func cleanLines(s string) string {
	var out []string
	blank := false
	for _, line := range strings.Split(s, "\n") {
		line = strings.Join(strings.Fields(line), " ")
		if line == "" {
			if !blank && len(out) > 0 {
				out = append(out, "")
			}
			blank = true
			continue
		}
		blank = false
		out = append(out, line)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

func headingLevel(a atom.Atom) int {
	switch a {
	case atom.H1:
		return 1
	case atom.H2:
		return 2
	case atom.H3:
		return 3
	case atom.H4:
		return 4
	case atom.H5:
		return 5
	case atom.H6:
		return 6
	}
	return 0
}

func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if n.Type == html.ElementNode && match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := find(c, match); f != nil {
			return f
		}
	}
	return nil
}

func textContent(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
		if n.Type == html.ElementNode && (n.DataAtom == atom.Script || n.DataAtom == atom.Style) {
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

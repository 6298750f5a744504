package ingest

import (
	"strings"
)

// extractMarkdown cuts Markdown at its ATX headings (# to ######), each
// section keeping the path of headings above it; a "#" inside a fenced code
// block is code, not a heading. The first level-1 heading is the title.
func extractMarkdown(text string) Document {
	var (
		doc   Document
		stack []string
		cur   strings.Builder
		fence string
	)
	flush := func() {
		if strings.TrimSpace(cur.String()) != "" {
			doc.Sections = append(doc.Sections, Section{Text: cur.String(), Heading: headingPath(stack)})
		}
		cur.Reset()
	}
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			cur.WriteString(line + "\n")
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			cur.WriteString(line + "\n")
			continue
		}
		if level, h, ok := atxHeading(line); ok {
			flush()
			stack = setHeading(stack, level, h)
			if level == 1 && doc.Title == "" {
				doc.Title = h
			}
			// The heading line stays in the text, so its words are found too.
			cur.WriteString(h + "\n\n")
			continue
		}
		cur.WriteString(line + "\n")
	}
	flush()
	return doc
}

// atxHeading parses "## Title ##" (up to three leading spaces).
func atxHeading(line string) (level int, text string, ok bool) {
	s := line
	for i := 0; i < 3 && strings.HasPrefix(s, " "); i++ {
		s = s[1:]
	}
	for level < len(s) && s[level] == '#' {
		level++
	}
	if level == 0 || level > 6 || (level < len(s) && s[level] != ' ' && s[level] != '\t') {
		return 0, "", false
	}
	text = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(s[level:]), "#"))
	if text == "" {
		return 0, "", false
	}
	return level, text, true
}

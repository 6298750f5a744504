package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// pattern is a compiled glob or "re:" regular expression.
//
// Globs: "*" is any run of characters but "/", "**" any run including "/",
// "?" one character but "/"; everything else stands for itself, and the
// glob must match the whole value. So {"path": "scratch/**"} is everything
// under scratch/, and "github__*" every tool of the github server.
// "re:<expr>" is a Go (RE2) regular expression, unanchored: write ^ and $
// where the match must start and end. RE2 runs in time linear in the
// input, so no pattern can stall a call.
type pattern struct {
	any     bool   // "*" or "**": everything (a fast path: most rules)
	literal string // no wildcard: equality
	isLit   bool
	// prefix is a glob's text before its first wildcard: a value without
	// it cannot match, which spares most rules the regular expression.
	prefix string
	re     *regexp.Regexp
}

func compilePattern(p string) (pattern, error) {
	if expr, ok := strings.CutPrefix(p, "re:"); ok {
		if len(expr) > MaxRegexLen {
			return pattern{}, fmt.Errorf("regular expression is %d bytes, at most %d", len(expr), MaxRegexLen)
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return pattern{}, fmt.Errorf("bad regular expression: %w", err)
		}
		return pattern{re: re}, nil
	}
	if p == "" {
		return pattern{}, errors.New("empty pattern")
	}
	if len(p) > MaxPatternLen {
		return pattern{}, fmt.Errorf("pattern is %d bytes, at most %d", len(p), MaxPatternLen)
	}
	if p == "*" || p == "**" {
		return pattern{any: true}, nil
	}
	if !strings.ContainsAny(p, "*?") {
		return pattern{literal: p, isLit: true}, nil
	}
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for i := 0; i < len(p); {
		switch {
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(`.*`)
			i += 2
		case p[i] == '*':
			b.WriteString(`[^/]*`)
			i++
		case p[i] == '?':
			b.WriteString(`[^/]`)
			i++
		default:
			j := i + 1
			for j < len(p) && p[j] != '*' && p[j] != '?' {
				j++
			}
			b.WriteString(regexp.QuoteMeta(p[i:j]))
			i = j
		}
	}
	b.WriteString(`$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return pattern{}, fmt.Errorf("bad pattern: %w", err)
	}
	return pattern{re: re, prefix: p[:strings.IndexAny(p, "*?")]}, nil
}

func (p pattern) match(s string) bool {
	switch {
	case p.any:
		return true
	case p.isLit:
		return s == p.literal
	case p.re != nil:
		return strings.HasPrefix(s, p.prefix) && p.re.MatchString(s)
	}
	return false
}

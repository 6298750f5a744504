package skills

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
)

// Limits of SKILL.md's front matter (those of Anthropic's Agent Skills).
const (
	MaxNameLen        = 64
	MaxDescriptionLen = 1024
	// MaxAllowedTools bounds the tools a skill may name.
	MaxAllowedTools = 64
)

// ErrInvalid: the skill or its archive is malformed; the message says how.
var ErrInvalid = errors.New("invalid skill")

// ErrTooLarge: the skill is over a size or file-count cap.
var ErrTooLarge = errors.New("skill too large")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

var nameRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// ValidName reports whether name can name a skill: lowercase letters, digits
// and single hyphens between them, at most MaxNameLen.
func ValidName(name string) bool {
	return len(name) <= MaxNameLen && nameRE.MatchString(name)
}

// toolRE: a tool name of the registry, or an MCP server's wildcard
// "<server>__*". Anthropic's own tool names (Read, Bash(git:*)) are accepted
// too, since skills written for Claude name them; the catalog warns about
// every name no registry knows.
var toolRE = regexp.MustCompile(`^[A-Za-z0-9_.:*()\-]{1,128}$`)

// Meta is SKILL.md's front matter.
type Meta struct {
	Name         string
	Description  string
	AllowedTools []string
}

// frontMatter is the YAML of SKILL.md; keys besides these (license,
// metadata, ...) are allowed and ignored, as Anthropic's format permits.
type frontMatter struct {
	Name         string `yaml:"name"`
	Description  string `yaml:"description"`
	AllowedTools any    `yaml:"allowed-tools"`
}

// ParseSkillMD splits SKILL.md into its validated front matter and body.
func ParseSkillMD(data []byte) (Meta, string, error) {
	if !utf8.Valid(data) {
		return Meta{}, "", invalid("SKILL.md is not UTF-8 text")
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return Meta{}, "", invalid("SKILL.md contains a NUL character")
	}
	text := strings.TrimPrefix(string(data), "\ufeff")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	rest, ok := strings.CutPrefix(text, "---\n")
	if !ok {
		return Meta{}, "", invalid("SKILL.md must start with a --- line opening its YAML front matter")
	}
	var fm, body string
	if strings.HasPrefix(rest, "---\n") || rest == "---" {
		fm, body = "", strings.TrimPrefix(strings.TrimPrefix(rest, "---"), "\n")
	} else {
		var found bool
		fm, body, found = strings.Cut(rest, "\n---\n")
		if !found {
			if f, ok := strings.CutSuffix(rest, "\n---"); ok {
				fm, body, found = f, "", true
			}
		}
		if !found {
			return Meta{}, "", invalid("SKILL.md's front matter has no closing --- line")
		}
	}
	var raw frontMatter
	if err := yaml.Unmarshal([]byte(fm), &raw); err != nil {
		return Meta{}, "", invalid("SKILL.md's front matter is not valid YAML: %s", firstLine(err.Error()))
	}
	meta := Meta{Name: strings.TrimSpace(raw.Name), Description: strings.TrimSpace(raw.Description)}
	switch {
	case meta.Name == "":
		return Meta{}, "", invalid("SKILL.md's front matter needs a name")
	case !ValidName(meta.Name):
		return Meta{}, "", invalid("name %q must be lowercase letters, digits and hyphens, at most %d", clip(meta.Name), MaxNameLen)
	case meta.Description == "":
		return Meta{}, "", invalid("SKILL.md's front matter needs a description")
	case utf8.RuneCountInString(meta.Description) > MaxDescriptionLen:
		return Meta{}, "", invalid("description is longer than %d characters", MaxDescriptionLen)
	}
	tools, err := allowedTools(raw.AllowedTools)
	if err != nil {
		return Meta{}, "", err
	}
	meta.AllowedTools = tools
	return meta, strings.TrimLeft(body, "\n"), nil
}

// allowedTools reads allowed-tools: a list, or one string of names separated
// by commas or spaces (as Claude's skills write it).
func allowedTools(v any) ([]string, error) {
	var names []string
	switch t := v.(type) {
	case nil:
	case string:
		names = strings.FieldsFunc(t, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	case []any:
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, invalid("allowed-tools must list tool names")
			}
			names = append(names, strings.TrimSpace(s))
		}
	default:
		return nil, invalid("allowed-tools must be a list of tool names or one string of them")
	}
	out := []string{}
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		if !toolRE.MatchString(n) {
			return nil, invalid("allowed-tools: %q is not a tool name", clip(n))
		}
		seen[n] = true
		out = append(out, n)
	}
	if len(out) > MaxAllowedTools {
		return nil, invalid("allowed-tools names more than %d tools", MaxAllowedTools)
	}
	return out, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return clip(s)
}

// clip shortens what is quoted back in an error message.
func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	for i := 80; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return ""
}

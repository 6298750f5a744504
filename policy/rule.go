// Package policy decides, for each tool call of an agent, whether it runs
// (allow), waits for a person (ask) or is refused (deny). Its Engine
// implements tools.Policy: the operator's rules from the config file come
// first, then the scope's rules from the store (a project's, then those of
// the scope without project), then the built-in defaults for high-risk tools,
// and a call nothing matched is allowed. Within each list the first matching
// rule wins.
package policy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openintern/openintern/tools"
)

// Limits on rules: a rule list is read on every tool call and written by
// admins over the API, so its size and its patterns are bounded.
const (
	MaxRules       = 500  // rules per scope (and in the config file)
	MaxPatternLen  = 1024 // bytes of a glob pattern
	MaxRegexLen    = 512  // bytes of a re: pattern
	MaxArgPatterns = 16   // argument patterns per rule
	MaxArgPathLen  = 256
	MaxTextLen     = 2000 // bytes of a reason or description
)

// Rule matches tool calls and says what happens to them.
type Rule struct {
	// ID names the rule in verdicts and events; given one if empty.
	ID string `json:"id,omitempty"`
	// Tool is a glob on the tool's name: "*", "shell", "github__*", "*_file".
	Tool string `json:"tool"`
	// Agent, if set, is a glob on the calling agent's id or name; "id:<glob>"
	// matches the id only.
	Agent string `json:"agent,omitempty"`
	// Role, if set, is a glob on the id of the role the agent acts in within its
	// group; a call made outside any role does not match.
	Role string `json:"role,omitempty"`
	// Args maps an argument path (a top-level key, or a dotted path into
	// nested objects) to a glob or a "re:" regular expression. The rule
	// matches only if every listed argument is present and matches; a
	// non-string value is matched on its JSON text.
	Args   map[string]string `json:"args,omitempty"`
	Effect tools.Effect      `json:"effect"`
	// Reason is told to the model (deny) or shown to the approver (ask).
	Reason      string    `json:"reason,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedBy   string    `json:"created_by,omitempty"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
}

// sameMatch reports whether two rules match and decide alike (their
// bookkeeping aside).
func (r Rule) sameMatch(o Rule) bool {
	if r.Tool != o.Tool || r.Agent != o.Agent || r.Role != o.Role || r.Effect != o.Effect ||
		r.Reason != o.Reason || r.Description != o.Description || len(r.Args) != len(o.Args) {
		return false
	}
	for k, v := range r.Args {
		if ov, ok := o.Args[k]; !ok || ov != v {
			return false
		}
	}
	return true
}

// RuleError is an invalid rule: Index is its place in the list.
type RuleError struct {
	Index int
	Field string
	Msg   string
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("rule %d: %s: %s", e.Index, e.Field, e.Msg)
}

var ruleIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)

// compiled is a rule ready to match.
type compiled struct {
	Rule
	tool, role pattern
	agent      pattern
	agentIDs   bool // "id:": the agent pattern matches ids only
	args       []argPattern
}

type argPattern struct {
	path []string
	pat  pattern
}

// Validate checks rules as Put and the config do (see compileRules).
func Validate(rules []Rule) error {
	_, err := compileRules(rules)
	return err
}

// compileRules checks rules and prepares them for matching. It refuses a rule list
// longer than MaxRules, a duplicate id, a bad pattern or effect, a NUL or an
// oversize field; the error is a *RuleError naming the rule.
func compileRules(rules []Rule) ([]compiled, error) {
	if len(rules) > MaxRules {
		return nil, &RuleError{Index: MaxRules, Field: "rules", Msg: fmt.Sprintf("%d rules, at most %d", len(rules), MaxRules)}
	}
	out := make([]compiled, 0, len(rules))
	ids := map[string]int{}
	for i, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			err.Index = i
			return nil, err
		}
		if r.ID != "" {
			if j, dup := ids[r.ID]; dup {
				return nil, &RuleError{Index: i, Field: "id", Msg: fmt.Sprintf("%q is also rule %d's id", r.ID, j)}
			}
			ids[r.ID] = i
		}
		out = append(out, c)
	}
	return out, nil
}

func compileRule(r Rule) (compiled, *RuleError) {
	bad := func(field, msg string) (compiled, *RuleError) {
		return compiled{}, &RuleError{Field: field, Msg: msg}
	}
	for field, v := range map[string]string{"id": r.ID, "tool": r.Tool, "agent": r.Agent, "role": r.Role,
		"reason": r.Reason, "description": r.Description, "created_by": r.CreatedBy} {
		if msg := checkText(v, MaxTextLen); msg != "" {
			return bad(field, msg)
		}
	}
	if r.ID != "" && !ruleIDPattern.MatchString(r.ID) {
		return bad("id", "must be 1-64 letters, digits or _.:- characters")
	}
	if !r.Effect.Valid() {
		return bad("effect", fmt.Sprintf("must be allow, deny or ask, got %q", r.Effect))
	}
	if r.Tool == "" {
		return bad("tool", `a tool pattern is required ("*" for every tool)`)
	}
	c := compiled{Rule: r}
	var err error
	if c.tool, err = compilePattern(r.Tool); err != nil {
		return bad("tool", err.Error())
	}
	agent := r.Agent
	if rest, ok := strings.CutPrefix(agent, "id:"); ok {
		agent, c.agentIDs = rest, true
		if agent == "" {
			return bad("agent", `"id:" needs a pattern after it`)
		}
	}
	if agent != "" {
		if c.agent, err = compilePattern(agent); err != nil {
			return bad("agent", err.Error())
		}
	}
	if r.Role != "" {
		if c.role, err = compilePattern(r.Role); err != nil {
			return bad("role", err.Error())
		}
	}
	if len(r.Args) > MaxArgPatterns {
		return bad("args", fmt.Sprintf("%d argument patterns, at most %d", len(r.Args), MaxArgPatterns))
	}
	for path, p := range r.Args {
		field := "args." + path
		if path == "" || len(path) > MaxArgPathLen || checkText(path, MaxArgPathLen) != "" {
			return bad("args", fmt.Sprintf("argument path %q must be 1-%d characters of valid text", path, MaxArgPathLen))
		}
		segs := strings.Split(path, ".")
		for _, s := range segs {
			if s == "" {
				return bad(field, "an argument path has no empty segment (a.b, not a..b or .a)")
			}
		}
		if msg := checkText(p, MaxPatternLen); msg != "" {
			return bad(field, msg)
		}
		pat, err := compilePattern(p)
		if err != nil {
			return bad(field, err.Error())
		}
		c.args = append(c.args, argPattern{path: segs, pat: pat})
	}
	return c, nil
}

func checkText(s string, maxLen int) string {
	switch {
	case len(s) > maxLen:
		return fmt.Sprintf("is %d bytes, at most %d", len(s), maxLen)
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL character"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	}
	return ""
}

// matches reports whether the rule applies to the call. args parses the
// call's arguments at most once, for the first rule that needs them.
func (c *compiled) matches(call tools.Call, args *lazyArgs) bool {
	if !c.tool.match(call.Name) {
		return false
	}
	if c.Agent != "" {
		if !c.agent.match(call.AgentID) && (c.agentIDs || call.AgentName == "" || !c.agent.match(call.AgentName)) {
			return false
		}
	}
	if c.Role != "" && (call.Role == "" || !c.role.match(call.Role)) {
		return false
	}
	for _, a := range c.args {
		v, ok := args.lookup(call.Args, a.path)
		if !ok || !a.pat.match(v) {
			return false
		}
	}
	return true
}

// lazyArgs is a call's arguments, parsed when first needed.
type lazyArgs struct {
	parsed bool
	obj    map[string]any
}

// lookup finds the value at path: a string as itself, anything else as its
// JSON text. ok is false when the path leads nowhere (or the arguments are
// not a JSON object).
func (l *lazyArgs) lookup(raw json.RawMessage, path []string) (string, bool) {
	if !l.parsed {
		l.parsed = true
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber() // 1e3 and 1000 stay as written
		if err := dec.Decode(&l.obj); err != nil {
			l.obj = nil
		}
	}
	var cur any = l.obj
	for _, seg := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[seg]; !ok {
			return "", false
		}
	}
	switch v := cur.(type) {
	case string:
		return v, true
	case nil:
		return "null", true
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return "", false
		}
		return string(b), true
	}
}

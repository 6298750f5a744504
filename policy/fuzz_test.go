package policy

import (
	"encoding/json"
	"testing"

	"github.com/openintern/openintern/tools"
)

// FuzzRuleMatch: compiling any pattern and matching it against any call
// never panics, and a compiled glob without wildcards matches exactly itself.
func FuzzRuleMatch(f *testing.F) {
	for _, s := range []struct{ pat, tool, args string }{
		{"*", "shell", `{}`},
		{"github__*", "github__x", `{"path":"a/b"}`},
		{"re:^a.*b$", "ab", `{"path":"scratch/x"}`},
		{"scratch/**", "x", `{"path":{"deep":[1,2]}}`},
		{"re:(", "x", `not json`},
		{"a?c", "abc", `{"path":"\u0000"}`},
		{"**/*?*", "a/b/c", `{"path":null}`},
	} {
		f.Add(s.pat, s.tool, s.args)
	}
	f.Fuzz(func(t *testing.T, pat, tool, args string) {
		r := Rule{Tool: pat, Agent: pat, Role: pat, Args: map[string]string{"path": pat, "path.deep": pat}, Effect: tools.EffectDeny}
		comp, err := compileRules([]Rule{r})
		if err != nil {
			return
		}
		c := tools.Call{Name: tool, AgentID: tool, Role: tool, Args: json.RawMessage(args)}
		var la lazyArgs
		_ = comp[0].matches(c, &la)
		p, err := compilePattern(pat)
		if err != nil {
			t.Fatalf("compiled as a rule but not as a pattern: %v", err)
		}
		if p.isLit && !p.match(pat) {
			t.Fatalf("literal %q does not match itself", pat)
		}
	})
}

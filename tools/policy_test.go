package tools

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// hintedTool is a tool of an MCP server: it reports its hints.
type hintedTool struct{ *funcTool }

func (h hintedTool) MCPHints() MCPHints {
	ro := false
	return MCPHints{Server: "srv", Annotated: true, ReadOnly: &ro}
}

// The registry asks the policy after the allowed list and the schema: allow
// runs, deny and a failing or confused policy block (fail closed), ask
// without an approval needs one and with an approval runs.
func TestRoutePolicy(t *testing.T) {
	var seen []ToolInfo
	policy := PolicyFunc(func(_ context.Context, call Call, info ToolInfo) (Verdict, error) {
		seen = append(seen, info)
		switch call.Name {
		case "deny":
			return Verdict{Effect: EffectDeny, Reason: "no way", Rule: "r1"}, nil
		case "ask", "srv__t":
			return Verdict{Effect: EffectAsk, Reason: "a person decides", Rule: "r2"}, nil
		case "broken":
			return Verdict{}, errors.New("rules unreadable")
		case "weird":
			return Verdict{Effect: "maybe"}, nil
		case "panics":
			panic("boom")
		}
		return Verdict{Effect: EffectAllow}, nil
	})
	r := NewRegistry(WithLogger(quietLogger()), WithPolicy(policy))
	tools := map[string]*funcTool{}
	for _, n := range []string{"ok", "deny", "ask", "broken", "weird", "panics"} {
		tools[n] = newTool(n, nil)
		mustRegister(t, r, tools[n])
	}
	hinted := hintedTool{newTool("srv__t", nil)}
	mustRegister(t, r, hinted)

	cases := []struct {
		name, approval string
		outcome        Outcome
		content        string
		runs           bool
	}{
		{"ok", "", OutcomeOK, "ok {}", true},
		{"deny", "", OutcomeBlocked, "blocked by policy: no way", false},
		{"ask", "", OutcomeNeedsApproval, "a person decides", false},
		{"ask", "appr_1", OutcomeOK, "ok {}", true},
		{"broken", "", OutcomeBlocked, "blocked by policy: the policy could not decide: rules unreadable", false},
		{"weird", "", OutcomeBlocked, `blocked by policy: the policy gave an unknown effect "maybe"`, false},
		{"panics", "", OutcomeBlocked, "blocked by policy: the policy failed (internal error)", false},
	}
	for _, c := range cases {
		before := tools[c.name].calls.Load()
		d := r.RouteDetail(t.Context(), Call{Name: c.name, ApprovalID: c.approval}, nil)
		if d.Outcome != c.outcome || d.Result.Content != c.content || d.Verdict == nil {
			t.Errorf("%s (approval %q): %v %q verdict %v", c.name, c.approval, d.Outcome, d.Result.Content, d.Verdict)
		}
		if ran := tools[c.name].calls.Load() > before; ran != c.runs {
			t.Errorf("%s (approval %q): ran = %v", c.name, c.approval, ran)
		}
	}
	if d := r.RouteDetail(t.Context(), Call{Name: "deny"}, nil); d.Verdict.Rule != "r1" {
		t.Errorf("verdict = %+v", d.Verdict)
	}
	// Not allowed and invalid arguments are refused before the policy is asked.
	n := len(seen)
	if _, o := r.Route(t.Context(), Call{Name: "ok"}, []string{"deny"}); o != OutcomeBlocked {
		t.Errorf("not allowed: %v", o)
	}
	if _, o := r.Route(t.Context(), Call{Name: "ok", Args: json.RawMessage(`{"x":1}`)}, nil); o != OutcomeError {
		t.Errorf("bad args: %v", o)
	}
	if len(seen) != n {
		t.Errorf("the policy was asked about a call refused before it")
	}
	// The policy learns MCP hints.
	d := r.RouteDetail(t.Context(), Call{Name: "srv__t"}, nil)
	last := seen[len(seen)-1]
	if d.Outcome != OutcomeNeedsApproval || last.Name != "srv__t" || last.MCP == nil || last.MCP.Server != "srv" || *last.MCP.ReadOnly {
		t.Errorf("hinted: %v %+v", d.Outcome, last)
	}
}

// The hash of arguments ignores spacing and key order, not values.
func TestArgsHash(t *testing.T) {
	a := ArgsHash(json.RawMessage(`{"b": 1, "a": "x"}`))
	if a != ArgsHash(json.RawMessage(`{"a":"x","b":1}`)) {
		t.Fatal("key order or spacing changed the hash")
	}
	if a == ArgsHash(json.RawMessage(`{"a":"y","b":1}`)) {
		t.Fatal("another value gave the same hash")
	}
	if ArgsHash(nil) != ArgsHash(json.RawMessage(`{}`)) || len(a) != 64 || strings.ToLower(a) != a {
		t.Fatal("empty arguments are {}; the hash is 64 hex digits")
	}
}

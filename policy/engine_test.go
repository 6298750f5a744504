package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/sqlite"
	"github.com/openintern/openintern/tools"
)

func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "p.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var (
	scope   = store.Scope{OrgID: "o1", UserID: "u1"}
	project = store.Scope{OrgID: "o1", UserID: "u1", ProjectID: "p1"}
)

func call(name, args string) tools.Call {
	if args == "" {
		args = "{}"
	}
	return tools.Call{Scope: scope, AgentID: "ag_1", AgentName: "writer", Name: name, Args: json.RawMessage(args)}
}

func newEngine(t testing.TB, st store.PolicyStore, cfg Config) *Engine {
	t.Helper()
	e, err := New(st, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func ptr(b bool) *bool { return &b }

// TestDecideTable: rules × calls → effect and deciding rule, with the
// built-in defaults on.
func TestDecideTable(t *testing.T) {
	st := openStore(t)
	e := newEngine(t, st, Config{Defaults: true, AllowHosts: []string{"api.example.com", "*.docs.example", "10.1.0.0/16", "files.example:8443"},
		Rules: []Rule{{Tool: "github__delete_*", Effect: tools.EffectDeny, Reason: "never delete on github"}}})
	_, err := e.Put(t.Context(), scope, []Rule{
		{ID: "r-agent-name", Tool: "send_message", Agent: "writer", Effect: tools.EffectDeny},
		{ID: "r-agent-id", Tool: "send_message", Agent: "id:ag_2", Effect: tools.EffectAsk},
		{ID: "r-idonly", Tool: "read_file", Agent: "id:writer", Effect: tools.EffectDeny},
		{ID: "r-role", Tool: "*_file", Role: "review*", Effect: tools.EffectDeny, Reason: "reviewers only read"},
		{ID: "r-args", Tool: "write_file", Args: map[string]string{"path": "reports/**"}, Effect: tools.EffectAllow},
		{ID: "r-nested", Tool: "mcp__deploy", Args: map[string]string{"target.env": "prod", "force": "true"}, Effect: tools.EffectDeny},
		{ID: "r-re", Tool: "http_fetch", Args: map[string]string{"url": `re:^https://partner\.example/`}, Effect: tools.EffectAllow},
		{ID: "r-shell", Tool: "shell", Args: map[string]string{"command": "git status*"}, Effect: tools.EffectAllow},
	}, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	mcpInfo := func(h tools.MCPHints) tools.ToolInfo { h.Server = "srv"; return tools.ToolInfo{MCP: &h} }
	withRole := func(c tools.Call, role string) tools.Call { c.Role = role; return c }
	withAgent := func(c tools.Call, id, name string) tools.Call { c.AgentID, c.AgentName = id, name; return c }
	cases := []struct {
		name   string
		call   tools.Call
		info   tools.ToolInfo
		effect tools.Effect
		rule   string
	}{
		{"config rule first", call("github__delete_repo", `{}`), mcpInfo(tools.MCPHints{Annotated: true, ReadOnly: ptr(true)}), tools.EffectDeny, "config:1"},
		{"agent by name", call("send_message", ""), tools.ToolInfo{}, tools.EffectDeny, "r-agent-name"},
		{"agent by id", withAgent(call("send_message", ""), "ag_2", "other"), tools.ToolInfo{}, tools.EffectAsk, "r-agent-id"},
		{"other agent unmatched", withAgent(call("send_message", ""), "ag_3", "x"), tools.ToolInfo{}, tools.EffectAllow, ""},
		{"id: does not match a name", withAgent(call("read_file", ""), "ag_9", "writer"), tools.ToolInfo{}, tools.EffectAllow, ""},
		{"role glob", withRole(call("read_file", `{"path":"a"}`), "reviewer"), tools.ToolInfo{}, tools.EffectDeny, "r-role"},
		{"role rule needs a role", call("read_file", `{"path":"a"}`), tools.ToolInfo{}, tools.EffectAllow, ""},
		{"arg glob across folders", call("write_file", `{"path":"reports/2026/q1.md","content":"x"}`), tools.ToolInfo{}, tools.EffectAllow, "r-args"},
		{"write outside scratch asks", call("write_file", `{"path":"notes.md","content":"x"}`), tools.ToolInfo{}, tools.EffectAsk, DefaultWriteOutside},
		{"write in scratch", call("write_file", `{"path":"scratch/a/b.md","content":"x"}`), tools.ToolInfo{}, tools.EffectAllow, ""},
		{"scratch escape by ..", call("edit_file", `{"path":"scratch/../etc.md"}`), tools.ToolInfo{}, tools.EffectAsk, DefaultWriteOutside},
		{"scratch itself", call("write_file", `{"path":"scratch"}`), tools.ToolInfo{}, tools.EffectAsk, DefaultWriteOutside},
		{"scratch prefix only", call("write_file", `{"path":"scratchy/x"}`), tools.ToolInfo{}, tools.EffectAsk, DefaultWriteOutside},
		{"nested args all match", call("mcp__deploy", `{"target":{"env":"prod"},"force":true}`), tools.ToolInfo{}, tools.EffectDeny, "r-nested"},
		{"nested args one differs", call("mcp__deploy", `{"target":{"env":"prod"},"force":false}`), tools.ToolInfo{}, tools.EffectAllow, ""},
		{"nested arg missing", call("mcp__deploy", `{"force":true}`), tools.ToolInfo{}, tools.EffectAllow, ""},
		{"regex arg", call("http_fetch", `{"url":"https://partner.example/x"}`), tools.ToolInfo{}, tools.EffectAllow, "r-re"},
		{"fetch allow-listed host", call("http_fetch", `{"url":"https://API.example.com/v1"}`), tools.ToolInfo{}, tools.EffectAllow, ""},
		{"fetch wildcard host", call("http_fetch", `{"url":"http://a.docs.example/"}`), tools.ToolInfo{}, tools.EffectAllow, ""},
		{"fetch IP in an allowed CIDR", call("http_fetch", `{"url":"http://10.1.2.3/x"}`), tools.ToolInfo{}, tools.EffectAllow, ""},
		{"fetch IP outside it", call("http_fetch", `{"url":"http://10.2.0.1/x"}`), tools.ToolInfo{}, tools.EffectAsk, DefaultFetchHost},
		{"fetch allowed host:port", call("http_fetch", `{"url":"https://files.example:8443/a"}`), tools.ToolInfo{}, tools.EffectAllow, ""},
		{"fetch that host on another port", call("http_fetch", `{"url":"https://files.example/a"}`), tools.ToolInfo{}, tools.EffectAsk, DefaultFetchHost},
		{"fetch other host asks", call("http_fetch", `{"url":"https://evil.example/"}`), tools.ToolInfo{}, tools.EffectAsk, DefaultFetchHost},
		{"fetch userinfo trick", call("http_fetch", `{"url":"https://api.example.com@evil.example/"}`), tools.ToolInfo{}, tools.EffectAsk, DefaultFetchHost},
		{"shell asks", call("shell", `{"command":"rm -rf /"}`), tools.ToolInfo{}, tools.EffectAsk, DefaultShell},
		{"shell allowed by args", call("shell", `{"command":"git status --short"}`), tools.ToolInfo{}, tools.EffectAllow, "r-shell"},
		{"mcp unannotated", call("srv__x", ""), mcpInfo(tools.MCPHints{}), tools.EffectAsk, DefaultMCPUnannotated},
		{"mcp destructive", call("srv__x", ""), mcpInfo(tools.MCPHints{Annotated: true, Destructive: ptr(true)}), tools.EffectAsk, DefaultMCPDestructive},
		{"mcp hint unset is destructive", call("srv__x", ""), mcpInfo(tools.MCPHints{Annotated: true, Idempotent: ptr(true)}), tools.EffectAsk, DefaultMCPDestructive},
		{"mcp read-only", call("srv__x", ""), mcpInfo(tools.MCPHints{Annotated: true, ReadOnly: ptr(true), Destructive: ptr(true)}), tools.EffectAllow, ""},
		{"mcp not destructive", call("srv__x", ""), mcpInfo(tools.MCPHints{Annotated: true, Destructive: ptr(false)}), tools.EffectAllow, ""},
		{"plain tool allowed", call("recall", `{}`), tools.ToolInfo{ReadOnly: true}, tools.EffectAllow, ""},
	}
	for _, tc := range cases {
		v, err := e.Decide(t.Context(), tc.call, tc.info)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if v.Effect != tc.effect || v.Rule != tc.rule {
			t.Errorf("%s: got %s by %q (%s), want %s by %q", tc.name, v.Effect, v.Rule, v.Reason, tc.effect, tc.rule)
		}
		if v.Effect != tools.EffectAllow && v.Reason == "" {
			t.Errorf("%s: %s without a reason", tc.name, v.Effect)
		}
	}
	// An approved call runs where it would ask; a deny stays a deny.
	c := call("shell", `{"command":"ls"}`)
	c.ApprovalID = "apr_1"
	if v, _ := e.Decide(t.Context(), c, tools.ToolInfo{}); v.Effect != tools.EffectAllow {
		t.Errorf("approved shell: %+v", v)
	}
	c = call("send_message", "")
	c.ApprovalID = "apr_1"
	if v, _ := e.Decide(t.Context(), c, tools.ToolInfo{}); v.Effect != tools.EffectDeny {
		t.Errorf("approved but denied: %+v", v)
	}
}

// TestDefaultsOff: with the defaults off, high-risk tools run unless a rule says otherwise.
func TestDefaultsOff(t *testing.T) {
	e := newEngine(t, openStore(t), Config{Defaults: false})
	for _, c := range []tools.Call{call("shell", `{"command":"x"}`), call("write_file", `{"path":"/etc/x"}`), call("http_fetch", `{"url":"https://x/"}`)} {
		if v, err := e.Decide(t.Context(), c, tools.ToolInfo{}); err != nil || v.Effect != tools.EffectAllow {
			t.Errorf("%s: %+v %v", c.Name, v, err)
		}
	}
	if len(e.Defaults()) != 0 {
		t.Errorf("defaults described while off: %v", e.Defaults())
	}
}

// TestProjectThenScope: a project's rules come before the rules of its
// scope without project; another user's rules do not apply.
func TestProjectThenScope(t *testing.T) {
	st := openStore(t)
	e := newEngine(t, st, Config{Defaults: true})
	ctx := t.Context()
	mustPut(t, e, scope, []Rule{{ID: "base", Tool: "shell", Effect: tools.EffectDeny}, {ID: "base2", Tool: "recall", Effect: tools.EffectDeny}}, 0)
	mustPut(t, e, project, []Rule{{ID: "proj", Tool: "shell", Effect: tools.EffectAllow}}, 0)
	mustPut(t, e, store.Scope{OrgID: "o1", UserID: "u2"}, []Rule{{ID: "other", Tool: "*", Effect: tools.EffectDeny}}, 0)
	c := call("shell", `{"command":"ls"}`)
	c.Scope = project
	d, err := e.Explain(ctx, c, tools.ToolInfo{})
	if err != nil || d.Effect != tools.EffectAllow || d.Rule != "proj" || d.Source != "project" {
		t.Fatalf("project call: %+v %v", d, err)
	}
	c.Name = "recall"
	if d, _ = e.Explain(ctx, c, tools.ToolInfo{}); d.Effect != tools.EffectDeny || d.Source != "scope" {
		t.Fatalf("project falls back to the scope's rules: %+v", d)
	}
	c = call("shell", `{"command":"ls"}`)
	if d, _ = e.Explain(ctx, c, tools.ToolInfo{}); d.Effect != tools.EffectDeny || d.Rule != "base" {
		t.Fatalf("scope without project: %+v", d)
	}
	c.Scope = store.Scope{OrgID: "o2", UserID: "u1"}
	if d, _ = e.Explain(ctx, c, tools.ToolInfo{}); d.Effect != tools.EffectAsk || d.Source != "default" {
		t.Fatalf("another org: %+v", d)
	}
}

func mustPut(t *testing.T, e *Engine, sc store.Scope, rules []Rule, version int64) {
	t.Helper()
	if _, err := e.Put(t.Context(), sc, rules, version, "test"); err != nil {
		t.Fatal(err)
	}
}

// TestFailClosed: when the rules cannot be read, the call is denied and says why.
func TestFailClosed(t *testing.T) {
	st := openStore(t)
	e := newEngine(t, st, Config{Defaults: true})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	v, err := e.Decide(t.Context(), call("recall", ""), tools.ToolInfo{})
	if err == nil || v.Effect != tools.EffectDeny || v.Reason == "" {
		t.Fatalf("store closed: %+v %v", v, err)
	}
}

// TestCacheInvalidation: a Put through the engine is seen at once; a write
// by another daemon (another engine on the same store) within the TTL.
func TestCacheInvalidation(t *testing.T) {
	st := openStore(t)
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := newEngine(t, st, Config{CacheTTL: 2 * time.Second})
	b := newEngine(t, st, Config{CacheTTL: 2 * time.Second})
	a.now, b.now = clock, clock
	ctx := t.Context()
	c := call("recall", "")
	if v, _ := b.Decide(ctx, c, tools.ToolInfo{}); v.Effect != tools.EffectAllow {
		t.Fatalf("before: %+v", v)
	}
	mustPut(t, a, scope, []Rule{{ID: "d", Tool: "recall", Effect: tools.EffectDeny}}, 0)
	if v, _ := a.Decide(ctx, c, tools.ToolInfo{}); v.Effect != tools.EffectDeny {
		t.Fatalf("the writer's engine: %+v", v)
	}
	if v, _ := b.Decide(ctx, c, tools.ToolInfo{}); v.Effect != tools.EffectAllow {
		t.Fatalf("the other engine within the TTL (cached): %+v", v)
	}
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	if v, _ := b.Decide(ctx, c, tools.ToolInfo{}); v.Effect != tools.EffectDeny {
		t.Fatalf("the other engine after the TTL: %+v", v)
	}
}

// TestPutValidation: bad rules are refused with their index and nothing is stored.
func TestPutValidation(t *testing.T) {
	st := openStore(t)
	e := newEngine(t, st, Config{})
	long := make([]byte, MaxRegexLen+1)
	for i := range long {
		long[i] = 'a'
	}
	many := make([]Rule, MaxRules+1)
	for i := range many {
		many[i] = Rule{Tool: "*", Effect: tools.EffectAllow}
	}
	for name, tc := range map[string]struct {
		rules []Rule
		index int
	}{
		"bad effect":     {[]Rule{{Tool: "*", Effect: tools.EffectAllow}, {Tool: "x", Effect: "maybe"}}, 1},
		"no tool":        {[]Rule{{Effect: tools.EffectDeny}}, 0},
		"bad regex":      {[]Rule{{Tool: "re:(", Effect: tools.EffectDeny}}, 0},
		"long regex":     {[]Rule{{Tool: "re:" + string(long), Effect: tools.EffectDeny}}, 0},
		"NUL in reason":  {[]Rule{{Tool: "x", Effect: tools.EffectDeny, Reason: "a\x00b"}}, 0},
		"NUL in arg":     {[]Rule{{Tool: "x", Effect: tools.EffectDeny, Args: map[string]string{"p": "a\x00"}}}, 0},
		"empty arg seg":  {[]Rule{{Tool: "x", Effect: tools.EffectDeny, Args: map[string]string{"a..b": "x"}}}, 0},
		"duplicate id":   {[]Rule{{ID: "a", Tool: "x", Effect: tools.EffectDeny}, {ID: "a", Tool: "y", Effect: tools.EffectDeny}}, 1},
		"bad id":         {[]Rule{{ID: "a b", Tool: "x", Effect: tools.EffectDeny}}, 0},
		"empty id: glob": {[]Rule{{Tool: "x", Agent: "id:", Effect: tools.EffectDeny}}, 0},
		"too many":       {many, MaxRules},
	} {
		_, err := e.Put(t.Context(), scope, tc.rules, store.AnyVersion, "x")
		var re *RuleError
		if !errors.As(err, &re) || re.Index != tc.index {
			t.Errorf("%s: %v, want a RuleError at %d", name, err, tc.index)
		}
	}
	p, err := e.Get(t.Context(), scope)
	if err != nil || p.Version != 0 || len(p.Rules) != 0 {
		t.Fatalf("after refused puts: %+v %v", p, err)
	}
}

// TestPutStampsAndConflicts: ids are given, unchanged rules keep their
// stamp, and a stale version is a conflict.
func TestPutStampsAndConflicts(t *testing.T) {
	e := newEngine(t, openStore(t), Config{})
	ctx := t.Context()
	p, err := e.Put(ctx, scope, []Rule{{Tool: "a", Effect: tools.EffectDeny}, {ID: "keep", Tool: "b", Effect: tools.EffectAsk}}, 0, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 1 || p.Rules[0].ID == "" || p.Rules[0].CreatedBy != "alice" || p.Rules[1].UpdatedAt.IsZero() {
		t.Fatalf("first put: %+v", p)
	}
	e.now = func() time.Time { return time.Now().Add(time.Hour) }
	p2, err := e.Put(ctx, scope, []Rule{p.Rules[1], {ID: "new", Tool: "c", Effect: tools.EffectAllow}}, 1, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if p2.Rules[0].CreatedBy != "alice" || !p2.Rules[0].UpdatedAt.Equal(p.Rules[1].UpdatedAt) || p2.Rules[1].CreatedBy != "bob" {
		t.Fatalf("second put stamps: %+v", p2.Rules)
	}
	if _, err := e.Put(ctx, scope, nil, 1, "carol"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale version: %v", err)
	}
}

// TestAllowAlways: the rule allows exactly that tool for exactly that agent,
// is not duplicated, does not override an earlier deny, and concurrent
// callers for different tools all land.
func TestAllowAlways(t *testing.T) {
	e := newEngine(t, openStore(t), Config{Defaults: true})
	ctx := t.Context()
	mustPut(t, e, scope, []Rule{{ID: "no-rm", Tool: "shell", Args: map[string]string{"command": "rm *"}, Effect: tools.EffectDeny}}, 0)
	r, err := e.AllowAlways(ctx, scope, "shell", "ag_1", "tok_x")
	if err != nil || r.Effect != tools.EffectAllow || r.Agent != "id:ag_1" || r.ID == "" {
		t.Fatalf("allow always: %+v %v", r, err)
	}
	again, err := e.AllowAlways(ctx, scope, "shell", "ag_1", "tok_y")
	if err != nil || again.ID != r.ID {
		t.Fatalf("second allow always: %+v %v, want the same rule", again, err)
	}
	if v, _ := e.Decide(ctx, call("shell", `{"command":"ls"}`), tools.ToolInfo{}); v.Effect != tools.EffectAllow || v.Rule != r.ID {
		t.Fatalf("the agent's shell: %+v", v)
	}
	if v, _ := e.Decide(ctx, call("shell", `{"command":"rm x"}`), tools.ToolInfo{}); v.Effect != tools.EffectDeny {
		t.Fatalf("the earlier deny still wins: %+v", v)
	}
	other := call("shell", `{"command":"ls"}`)
	other.AgentID, other.AgentName = "ag_1x", "ag_1"
	if v, _ := e.Decide(ctx, other, tools.ToolInfo{}); v.Effect != tools.EffectAsk {
		t.Fatalf("an agent named like the id: %+v", v)
	}
	if _, err := e.AllowAlways(ctx, scope, "srv__*", "ag_1", "x"); err == nil {
		t.Fatal("a wildcard tool was allowed always")
	}

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.AllowAlways(ctx, scope, fmt.Sprintf("srv__t%d", i), "ag_1", "x")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent allow always: %v", err)
		}
	}
	p, err := e.Get(ctx, scope)
	if err != nil || len(p.Rules) != 12 {
		t.Fatalf("after 10 concurrent allow always: %d rules, %v", len(p.Rules), err)
	}
}

// TestConfigRulesValidated: a bad config rule stops New; good ones get ids.
func TestConfigRulesValidated(t *testing.T) {
	if _, err := New(openStore(t), Config{Rules: []Rule{{Tool: "x", Effect: "nope"}}}, nil); err == nil {
		t.Fatal("bad config rule accepted")
	}
	if _, err := New(openStore(t), Config{Defaults: true, ScratchDir: "../x"}, nil); err == nil {
		t.Fatal("scratch dir outside the workspace accepted")
	}
	if _, err := New(openStore(t), Config{Defaults: true, AllowHosts: []string{"https://x/"}}, nil); err == nil {
		t.Fatal("a URL as allow host accepted")
	}
	e := newEngine(t, openStore(t), Config{Rules: []Rule{{Tool: "x", Effect: tools.EffectDeny}, {ID: "mine", Tool: "y", Effect: tools.EffectAsk}}})
	got := e.ConfigRules()
	if len(got) != 2 || got[0].ID != "config:1" || got[1].ID != "mine" {
		t.Fatalf("config rules: %+v", got)
	}
}

// BenchmarkDecide measures a decision on a cached scope with 50 rules, the
// call matching none (the worst case: every rule is tried) and falling to
// the defaults.
func BenchmarkDecide(b *testing.B) {
	st := openStore(b)
	e := newEngine(b, st, Config{Defaults: true, CacheTTL: time.Hour})
	rules := make([]Rule, 50)
	for i := range rules {
		rules[i] = Rule{Tool: fmt.Sprintf("tool_%d_*", i), Agent: "agent-*", Args: map[string]string{"path": "x/**"}, Effect: tools.EffectDeny}
	}
	if _, err := e.Put(b.Context(), scope, rules, 0, "b"); err != nil {
		b.Fatal(err)
	}
	c := call("write_file", `{"path":"scratch/notes.md","content":"hello"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if v, err := e.Decide(b.Context(), c, tools.ToolInfo{}); err != nil || v.Effect != tools.EffectAllow {
			b.Fatalf("%+v %v", v, err)
		}
	}
}

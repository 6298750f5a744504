package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
)

// funcTool is a Tool made of a spec and a function.
type funcTool struct {
	name   string
	params string
	calls  atomic.Int32
	fn     func(ctx context.Context, call Call) (Result, error)
}

func (f *funcTool) Spec() llm.ToolSpec {
	return llm.ToolSpec{Name: f.name, Description: "test tool " + f.name, Parameters: json.RawMessage(f.params)}
}

func (f *funcTool) Run(ctx context.Context, call Call) (Result, error) {
	f.calls.Add(1)
	if f.fn == nil {
		return Result{Content: "ok " + string(call.Args)}, nil
	}
	return f.fn(ctx, call)
}

func newTool(name string, fn func(ctx context.Context, call Call) (Result, error)) *funcTool {
	return &funcTool{name: name, params: `{"type":"object","properties":{"x":{"type":"string"}}}`, fn: fn}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func mustRegister(t *testing.T, r *Registry, tools ...Tool) {
	t.Helper()
	for _, tool := range tools {
		if err := r.Register(tool); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
}

func TestRegisterValidation(t *testing.T) {
	r := NewRegistry()
	mustRegister(t, r, newTool("alpha", nil))
	long := strings.Repeat("a", 64)
	mustRegister(t, r, newTool(long, nil), newTool("A-b_9", nil))

	cases := []struct {
		name string
		tool Tool
		want string
	}{
		{"nil", nil, "nil tool"},
		{"duplicate", newTool("alpha", nil), `duplicate tool name "alpha"`},
		{"empty name", newTool("", nil), "invalid tool name"},
		{"65 chars", newTool(long+"a", nil), "invalid tool name"},
		{"space", newTool("read file", nil), "invalid tool name"},
		{"dot", newTool("read.file", nil), "invalid tool name"},
		{"non-ascii", newTool("lecture_ü", nil), "invalid tool name"},
		{"bad schema", &funcTool{name: "bad", params: `{"type":"object","properties":{"a":{"pattern":"x"}}}`}, `unsupported keyword "pattern"`},
		{"invalid schema json", &funcTool{name: "bad2", params: `{"type":`}, "not valid JSON"},
		{"non-object schema", &funcTool{name: "bad3", params: `{"type":"string"}`}, `must have type "object"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := r.Register(c.tool)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Register = %v, want error containing %q", err, c.want)
			}
		})
	}
	if got, want := strings.Join(r.Names(), ","), "A-b_9,"+long+",alpha"; got != want {
		t.Fatalf("Names() = %s, want %s (failed registrations must not be kept)", got, want)
	}
}

func TestSpecs(t *testing.T) {
	r := NewRegistry()
	noParams := &funcTool{name: "noargs"}
	mustRegister(t, r, newTool("zeta", nil), newTool("alpha", nil), noParams, newTool("mid", nil))

	names := func(specs []llm.ToolSpec) string {
		var n []string
		for _, s := range specs {
			n = append(n, s.Name)
		}
		return strings.Join(n, ",")
	}
	if got := names(r.Specs(nil)); got != "alpha,mid,noargs,zeta" {
		t.Fatalf("Specs(nil) = %s", got)
	}
	if got := names(r.Specs([]string{})); got != "alpha,mid,noargs,zeta" {
		t.Fatalf("Specs(empty) = %s", got)
	}
	if got := names(r.Specs([]string{"zeta", "ghost", "alpha", "zeta"})); got != "alpha,zeta" {
		t.Fatalf("Specs(subset) = %s, want alpha,zeta (sorted, unknown ignored, no duplicates)", got)
	}
	if got := r.Specs([]string{"ghost"}); len(got) != 0 {
		t.Fatalf("Specs([ghost]) = %v, want none", got)
	}
	specs := r.Specs([]string{"noargs"})
	if string(specs[0].Parameters) != `{"type":"object","properties":{}}` {
		t.Fatalf("empty parameters became %s", specs[0].Parameters)
	}
	if specs[0].Description != "test tool noargs" {
		t.Fatalf("description %q", specs[0].Description)
	}
	// Specs hands out copies: changing one does not change the registry.
	specs[0].Parameters[0] = 'X'
	if p := r.Specs([]string{"noargs"})[0].Parameters; p[0] != '{' {
		t.Fatalf("registry schema was modified through Specs: %s", p)
	}
}

func TestRouteUnknownAndBlocked(t *testing.T) {
	r := NewRegistry()
	a, b, secret := newTool("alpha", nil), newTool("beta", nil), newTool("secret", nil)
	mustRegister(t, r, a, b, secret)
	ctx := context.Background()

	res, out := r.Route(ctx, Call{Name: "nope"}, nil)
	if out != OutcomeUnknown || !res.IsError || res.Content != `unknown tool "nope"; available: alpha, beta, secret` {
		t.Fatalf("unknown: %v %+v", out, res)
	}
	res, out = r.Route(ctx, Call{Name: "nope"}, []string{"beta", "alpha"})
	if out != OutcomeUnknown || res.Content != `unknown tool "nope"; available: alpha, beta` {
		t.Fatalf("unknown with allowed: %v %+v", out, res)
	}
	res, out = r.Route(ctx, Call{Name: "nope"}, []string{"ghost"})
	if out != OutcomeUnknown || res.Content != `unknown tool "nope"; available: none` {
		t.Fatalf("unknown, nothing allowed: %v %+v", out, res)
	}

	res, out = r.Route(ctx, Call{Name: "secret", Args: json.RawMessage(`{}`)}, []string{"alpha", "beta"})
	if out != OutcomeBlocked || !res.IsError {
		t.Fatalf("blocked: %v %+v", out, res)
	}
	if res.Content != `tool "secret" is not permitted for this agent; available: alpha, beta` {
		t.Fatalf("blocked content %q", res.Content)
	}
	if n := secret.calls.Load(); n != 0 {
		t.Fatalf("blocked tool ran %d times", n)
	}
	if got := r.Execute(ctx, Call{Name: "secret"}, []string{"alpha"}); !got.IsError || !strings.Contains(got.Content, "not permitted") {
		t.Fatalf("Execute blocked: %+v", got)
	}
	// An allowed list naming only unregistered tools permits nothing.
	if _, out := r.Route(ctx, Call{Name: "alpha"}, []string{"ghost"}); out != OutcomeBlocked {
		t.Fatalf("alpha with allowed [ghost]: %v, want blocked", out)
	}

	// A very long garbage name is shortened in the message.
	res, _ = r.Route(ctx, Call{Name: strings.Repeat("x", 5000)}, nil)
	if len(res.Content) > 300 {
		t.Fatalf("long unknown name echoed in full (%d bytes)", len(res.Content))
	}
}

func TestRouteArguments(t *testing.T) {
	r := NewRegistry()
	var got Call
	tool := &funcTool{
		name:   "reader",
		params: `{"type":"object","properties":{"path":{"type":"string","minLength":1},"n":{"type":"integer"}},"required":["path"],"additionalProperties":false}`,
		fn: func(_ context.Context, call Call) (Result, error) {
			got = call
			return Result{Content: "read"}, nil
		},
	}
	opt := &funcTool{name: "opt", fn: func(_ context.Context, call Call) (Result, error) {
		return Result{Content: "args=" + string(call.Args)}, nil
	}}
	mustRegister(t, r, tool, opt)
	ctx := context.Background()

	cases := []struct {
		args, want string
	}{
		{`{"path": `, `invalid arguments for tool "reader": not valid JSON`},
		{`{"path":"a"} trailing`, `not valid JSON`},
		{`{}`, `invalid arguments for tool "reader": argument "path": required`},
		{``, `argument "path": required`},
		{`{"path":""}`, `argument "path": must not be empty`},
		{`{"path":"a","n":"2"}`, `argument "n": must be an integer, got string`},
		{`{"path":"a","extra":1}`, `argument "extra": unknown property; allowed: n, path`},
		{`"a"`, `arguments: must be an object, got string`},
	}
	for _, c := range cases {
		res, out := r.Route(ctx, Call{Name: "reader", Args: json.RawMessage(c.args)}, nil)
		if out != OutcomeError || !res.IsError || !strings.Contains(res.Content, c.want) {
			t.Errorf("args %q: %v %q, want error containing %q", c.args, out, res.Content, c.want)
		}
	}
	if n := tool.calls.Load(); n != 0 {
		t.Fatalf("tool ran %d times with invalid arguments", n)
	}

	call := Call{Scope: store.Scope{OrgID: "o", UserID: "u"}, AgentID: "ag", RunID: "r1", CallID: "c1",
		Name: "reader", Args: json.RawMessage(` {"path":"a","n":2} `)}
	res, out := r.Route(ctx, call, []string{"reader"})
	if out != OutcomeOK || res.IsError || res.Content != "read" {
		t.Fatalf("valid call: %v %+v", out, res)
	}
	if got.Scope != call.Scope || got.AgentID != "ag" || got.RunID != "r1" || got.CallID != "c1" || string(got.Args) != `{"path":"a","n":2}` {
		t.Fatalf("tool got %+v", got)
	}

	// Empty arguments are {} for a tool without required parameters.
	for _, args := range []string{"", "  ", "{}"} {
		res, out := r.Route(ctx, Call{Name: "opt", Args: json.RawMessage(args)}, nil)
		if out != OutcomeOK || res.Content != "args={}" {
			t.Errorf("opt with %q: %v %+v", args, out, res)
		}
	}
}

func TestRouteToolFailures(t *testing.T) {
	errBoom := errors.New("disk on fire")
	r := NewRegistry(WithLogger(quietLogger()))
	mustRegister(t, r,
		newTool("goerr", func(context.Context, Call) (Result, error) {
			return Result{Content: "ignored"}, fmt.Errorf("write x: %w", errBoom)
		}),
		newTool("errres", func(context.Context, Call) (Result, error) {
			return Result{Content: "no such thing", IsError: true}, nil
		}),
		newTool("panics", func(context.Context, Call) (Result, error) {
			var m map[string]int
			m["x"] = 1 //nolint:staticcheck // the tool panics on purpose
			return Result{}, nil
		}),
		newTool("panicsval", func(context.Context, Call) (Result, error) {
			panic("custom panic value")
		}),
	)
	ctx := context.Background()

	res, out := r.Route(ctx, Call{Name: "goerr"}, nil)
	if out != OutcomeError || !res.IsError || res.Content != "write x: disk on fire" {
		t.Fatalf("Go error: %v %+v", out, res)
	}
	res, out = r.Route(ctx, Call{Name: "errres"}, nil)
	if out != OutcomeError || !res.IsError || res.Content != "no such thing" {
		t.Fatalf("error result: %v %+v", out, res)
	}
	res, out = r.Route(ctx, Call{Name: "panics"}, nil)
	if out != OutcomeError || !res.IsError || !strings.Contains(res.Content, `tool "panics" failed`) || !strings.Contains(res.Content, "assignment to entry in nil map") {
		t.Fatalf("panic: %v %+v", out, res)
	}
	res, _ = r.Route(ctx, Call{Name: "panicsval"}, nil)
	if !strings.Contains(res.Content, "custom panic value") {
		t.Fatalf("panic value: %+v", res)
	}
	// The registry still works after a panic.
	if _, out := r.Route(ctx, Call{Name: "errres"}, nil); out != OutcomeError {
		t.Fatalf("after panic: %v", out)
	}
}

func TestRoutePanicIsLogged(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	r := NewRegistry(WithLogger(logger))
	mustRegister(t, r, newTool("panics", func(context.Context, Call) (Result, error) { panic("kaboom") }))
	r.Route(context.Background(), Call{Name: "panics", RunID: "run-7"}, nil)
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "kaboom") || !strings.Contains(buf.String(), "run-7") || !strings.Contains(buf.String(), "registry_test.go") {
		t.Fatalf("panic log lacks value, run or stack: %s", buf.String())
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestRouteTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var sawDeadline atomic.Bool
	r := NewRegistry(WithTimeout(50 * time.Millisecond))
	mustRegister(t, r,
		newTool("polite", func(ctx context.Context, _ Call) (Result, error) {
			if _, ok := ctx.Deadline(); ok {
				sawDeadline.Store(true)
			}
			<-ctx.Done()
			return Result{}, ctx.Err()
		}),
		newTool("stubborn", func(context.Context, Call) (Result, error) {
			<-release // ignores its context
			return Result{Content: "late"}, nil
		}),
		newTool("quick", nil),
	)
	for _, name := range []string{"polite", "stubborn"} {
		start := time.Now()
		res, out := r.Route(context.Background(), Call{Name: name}, nil)
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("%s: Route took %s", name, el)
		}
		if out != OutcomeError || !res.IsError || res.Content != fmt.Sprintf("tool %q timed out after 50ms", name) {
			t.Fatalf("%s: %v %+v", name, out, res)
		}
	}
	if !sawDeadline.Load() {
		t.Fatal("the tool's context had no deadline")
	}
	if res, out := r.Route(context.Background(), Call{Name: "quick"}, nil); out != OutcomeOK || res.IsError {
		t.Fatalf("quick tool under a timeout: %v %+v", out, res)
	}
}

func TestRouteDefaultTimeout(t *testing.T) {
	r := NewRegistry(WithTimeout(-1))
	var left time.Duration
	mustRegister(t, r, newTool("t", func(ctx context.Context, _ Call) (Result, error) {
		d, _ := ctx.Deadline()
		left = time.Until(d)
		return Result{}, nil
	}))
	r.Route(context.Background(), Call{Name: "t"}, nil)
	if left < 55*time.Second || left > DefaultTimeout {
		t.Fatalf("deadline in %s, want about %s", left, DefaultTimeout)
	}
}

func TestRouteCancelled(t *testing.T) {
	r := NewRegistry()
	started := make(chan struct{})
	slow := newTool("slow", func(ctx context.Context, _ Call) (Result, error) {
		close(started)
		<-ctx.Done()
		return Result{}, ctx.Err()
	})
	mustRegister(t, r, slow)

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	res, out := r.Route(ctx, Call{Name: "slow"}, nil)
	if out != OutcomeError || !strings.Contains(res.Content, `tool "slow" was cancelled`) {
		t.Fatalf("cancelled: %v %+v", out, res)
	}

	// Already cancelled: the tool does not run.
	before := slow.calls.Load()
	res, out = r.Route(ctx, Call{Name: "slow"}, nil)
	if out != OutcomeError || !strings.Contains(res.Content, "was not run") || slow.calls.Load() != before {
		t.Fatalf("pre-cancelled: %v %+v, calls %d->%d", out, res, before, slow.calls.Load())
	}
}

func TestRouteTruncates(t *testing.T) {
	const limit = 1000
	r := NewRegistry(WithMaxResultBytes(limit))
	var seenLimit int
	mustRegister(t, r,
		newTool("big", func(ctx context.Context, _ Call) (Result, error) {
			seenLimit = MaxResultBytes(ctx)
			return Result{Content: "START" + strings.Repeat("é", 5000)}, nil // 10005 bytes
		}),
		newTool("bigerr", func(context.Context, Call) (Result, error) {
			return Result{}, errors.New(strings.Repeat("e", 3000))
		}),
		newTool("exact", func(context.Context, Call) (Result, error) {
			return Result{Content: strings.Repeat("x", limit)}, nil
		}),
	)
	res, out := r.Route(context.Background(), Call{Name: "big"}, nil)
	if out != OutcomeOK || res.IsError {
		t.Fatalf("big: %v", out)
	}
	if len(res.Content) > limit {
		t.Fatalf("content is %d bytes, limit %d", len(res.Content), limit)
	}
	if !strings.HasPrefix(res.Content, "START") || !strings.Contains(res.Content, "[truncated: showing the first") || !strings.Contains(res.Content, "of 10005 bytes]") {
		t.Fatalf("content lacks prefix or note: ...%s", res.Content[len(res.Content)-80:])
	}
	if !utf8.ValidString(res.Content) {
		t.Fatal("truncation split a rune")
	}
	if seenLimit != limit {
		t.Fatalf("MaxResultBytes in tool = %d, want %d", seenLimit, limit)
	}
	if n := MaxResultBytes(context.Background()); n != DefaultMaxResultBytes {
		t.Fatalf("MaxResultBytes outside a router = %d", n)
	}

	res, _ = r.Route(context.Background(), Call{Name: "bigerr"}, nil)
	if len(res.Content) > limit || !res.IsError || !strings.Contains(res.Content, "[truncated") {
		t.Fatalf("error result not truncated: %d bytes", len(res.Content))
	}
	res, _ = r.Route(context.Background(), Call{Name: "exact"}, nil)
	if len(res.Content) != limit || strings.Contains(res.Content, "truncated") {
		t.Fatalf("content of exactly the limit was changed (%d bytes)", len(res.Content))
	}
}

func TestTruncateContentTinyLimit(t *testing.T) {
	got := truncateContent(strings.Repeat("ab", 100), 10)
	if got != "ababababab" {
		t.Fatalf("got %q", got)
	}
	if got := truncateContent("short", 10); got != "short" {
		t.Fatalf("got %q", got)
	}
}

func TestRouteConcurrent(t *testing.T) {
	r := NewRegistry()
	var total atomic.Int64
	mustRegister(t, r, newTool("echo", func(_ context.Context, call Call) (Result, error) {
		total.Add(1)
		return Result{Content: call.CallID}, nil
	}), newTool("other", nil))
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id := fmt.Sprintf("%d-%d", g, i)
				res, out := r.Route(context.Background(), Call{Name: "echo", CallID: id, Args: json.RawMessage(`{"x":"y"}`)}, []string{"echo"})
				if out != OutcomeOK || res.Content != id {
					errs <- fmt.Sprintf("%s: %v %+v", id, out, res)
					return
				}
				if _, out := r.Route(context.Background(), Call{Name: "other"}, []string{"echo"}); out != OutcomeBlocked {
					errs <- fmt.Sprintf("other: %v", out)
					return
				}
				_ = r.Specs(nil)
				_ = r.Names()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if total.Load() != 16*50 {
		t.Fatalf("echo ran %d times, want %d", total.Load(), 16*50)
	}
}

func TestOutcomeString(t *testing.T) {
	want := map[Outcome]string{OutcomeOK: "ok", OutcomeError: "error", OutcomeBlocked: "blocked", OutcomeUnknown: "unknown", OutcomeNeedsApproval: "needs_approval", Outcome(9): "Outcome(9)"}
	for o, s := range want {
		if o.String() != s {
			t.Errorf("%d: %q, want %q", int(o), o.String(), s)
		}
	}
}

// TestGroupGrantsAndUnregister: "<group>__*" grants every tool of the group
// (and only those) in Specs and Route; an unregistered tool is unknown.
func TestGroupGrantsAndUnregister(t *testing.T) {
	r := NewRegistry(WithLogger(quietLogger()))
	mustRegister(t, r, newTool("srv__a", nil), newTool("srv__b", nil), newTool("srvx__c", nil), newTool("other", nil))
	allowed := []string{"srv__*", "other"}
	var names []string
	for _, s := range r.Specs(allowed) {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "other,srv__a,srv__b" {
		t.Fatalf("specs: %v", names)
	}
	if _, out := r.Route(t.Context(), Call{Name: "srv__b"}, allowed); out != OutcomeOK {
		t.Fatalf("srv__b: %v", out)
	}
	if _, out := r.Route(t.Context(), Call{Name: "srvx__c"}, allowed); out != OutcomeBlocked {
		t.Fatalf("srvx__c is not of group srv: %v", out)
	}
	// A "*" alone or without a group grants nothing.
	if _, out := r.Route(t.Context(), Call{Name: "srv__a"}, []string{"*", "__*"}); out != OutcomeBlocked {
		t.Fatalf("bare wildcard: %v", out)
	}
	if !r.Unregister("srv__a") || r.Unregister("srv__a") {
		t.Fatal("Unregister reports wrongly")
	}
	if _, out := r.Route(t.Context(), Call{Name: "srv__a"}, allowed); out != OutcomeUnknown {
		t.Fatalf("unregistered: %v", out)
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

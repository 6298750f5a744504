package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/openintern/openintern/llm"
)

// Defaults of a Registry.
const (
	// DefaultTimeout bounds one tool call.
	DefaultTimeout = 60 * time.Second
	// DefaultMaxResultBytes bounds the content of one result; longer content is truncated.
	DefaultMaxResultBytes = 16 << 10
)

// Outcome classifies how a routed call ended, so the agent loop can pick the
// event to emit (tool.result, tool.error, tool.blocked, ...).
type Outcome int

// Outcomes of Registry.Route.
const (
	// OutcomeOK: the tool ran and returned a result that is not an error.
	OutcomeOK Outcome = iota
	// OutcomeError: the arguments were invalid, or the tool failed, returned
	// an error result, panicked, timed out or was cancelled.
	OutcomeError
	// OutcomeBlocked: the tool exists but is not in the agent's allowed list; it did not run.
	OutcomeBlocked
	// OutcomeUnknown: no tool of that name is registered; nothing ran.
	OutcomeUnknown
	// OutcomeNeedsApproval: the policy asks a person to approve the call and
	// the call carries no approval; the tool did not run. The Result holds
	// the policy's reason (for the approver, not the model).
	OutcomeNeedsApproval
)

// String returns "ok", "error", "blocked", "unknown" or "needs_approval".
func (o Outcome) String() string {
	switch o {
	case OutcomeOK:
		return "ok"
	case OutcomeError:
		return "error"
	case OutcomeBlocked:
		return "blocked"
	case OutcomeUnknown:
		return "unknown"
	case OutcomeNeedsApproval:
		return "needs_approval"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

var toolNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// ValidToolName reports whether name can be registered: 1 to 64 characters of
// ASCII letters, digits, '_' and '-'.
func ValidToolName(name string) bool { return toolNameRE.MatchString(name) }

// emptyObjectSchema is the schema of a tool that declares no parameters.
var emptyObjectSchema = json.RawMessage(`{"type":"object","properties":{}}`)

// Option configures a Registry.
type Option func(*Registry)

// WithTimeout sets the time limit of one tool call (default 60 s). d <= 0 keeps the default.
func WithTimeout(d time.Duration) Option {
	return func(r *Registry) {
		if d > 0 {
			r.timeout = d
		}
	}
}

// WithMaxResultBytes sets the largest result content in bytes (default 16 KiB);
// longer content is cut and a note appended. n <= 0 keeps the default.
func WithMaxResultBytes(n int) Option {
	return func(r *Registry) {
		if n > 0 {
			r.maxResult = n
		}
	}
}

// WithLogger sets where recovered panics are logged with their stack (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(r *Registry) {
		if l != nil {
			r.logger = l
		}
	}
}

// WithPolicy makes every routed call that passes the allowed list and the
// argument schema ask p whether it may run (see Route). nil: every call runs.
func WithPolicy(p Policy) Option {
	return func(r *Registry) { r.policy = p }
}

// Registry holds the tools of a daemon and routes calls to them. Register
// tools first; after that it is safe for concurrent use (Register itself is
// also safe to call concurrently).
type Registry struct {
	mu        sync.RWMutex
	tools     map[string]*registered
	timeout   time.Duration
	maxResult int
	logger    *slog.Logger
	auditor   Auditor
	// scoped are the tools only one scope sees, by ScopeKey then name
	// (see registry_scoped.go); activate starts a scope's tools on use.
	scoped   map[string]map[string]*registered
	activate ScopeActivator
	policy   Policy

	// life ends at Close and cancels every call in flight; calls counts
	// their goroutines, also those Route gave up on, so Close can wait for
	// them. closeMu orders calls.Add against Close's Wait.
	life    context.Context
	endLife context.CancelCauseFunc
	closeMu sync.Mutex
	closed  bool
	calls   sync.WaitGroup
}

type registered struct {
	tool     Tool
	spec     llm.ToolSpec
	schema   *Schema
	readOnly bool // not audited (see ReadOnly)
}

// NewRegistry returns an empty registry.
func NewRegistry(opts ...Option) *Registry {
	r := &Registry{
		tools:     make(map[string]*registered),
		timeout:   DefaultTimeout,
		maxResult: DefaultMaxResultBytes,
		logger:    slog.Default(),
	}
	r.life, r.endLife = context.WithCancelCause(context.Background())
	for _, o := range opts {
		o(r)
	}
	return r
}

// Register adds a tool. It fails on a nil tool, an invalid or duplicate name,
// and a parameters schema that does not compile or is not of type object. A
// tool with empty Parameters takes no arguments ({"type":"object","properties":{}}).
func (r *Registry) Register(t Tool) error {
	if t == nil {
		return errors.New("tools: register: nil tool")
	}
	spec := t.Spec()
	if !ValidToolName(spec.Name) {
		return fmt.Errorf("tools: register: invalid tool name %q (want 1-64 of a-z A-Z 0-9 _ -)", spec.Name)
	}
	if len(bytes.TrimSpace(spec.Parameters)) == 0 {
		spec.Parameters = emptyObjectSchema
	}
	// Keep our own copy so a tool cannot change its schema after validation.
	spec.Parameters = append(json.RawMessage(nil), spec.Parameters...)
	schema, err := CompileSchema(spec.Parameters)
	if err != nil {
		return fmt.Errorf("tools: register %q: %w", spec.Name, err)
	}
	if schema.Type() != "object" {
		return fmt.Errorf("tools: register %q: parameters schema must have type \"object\", got %q", spec.Name, schema.Type())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.tools[spec.Name]; dup {
		return fmt.Errorf("tools: register: duplicate tool name %q", spec.Name)
	}
	r.tools[spec.Name] = &registered{tool: t, spec: spec, schema: schema, readOnly: IsReadOnly(t)}
	return nil
}

// Unregister removes a tool, so it is offered to no model and a call of it is
// an unknown tool; it reports whether the tool was registered. Tools whose set
// changes at run time (an MCP server's) come and go this way.
func (r *Registry) Unregister(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.tools[name]
	delete(r.tools, name)
	return ok
}

// Names returns the registered tool names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return sortedKeys(r.tools)
}

// Specs returns the specs of the tools an agent may use, sorted by name. A
// nil or empty allowed list means every registered tool; names in allowed
// that are not registered are ignored (so a list naming only unknown tools
// gives no specs).
func (r *Registry) Specs(allowed []string) []llm.ToolSpec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := r.permittedLocked(allowed)
	specs := make([]llm.ToolSpec, len(names))
	for i, n := range names {
		s := r.tools[n].spec
		s.Parameters = append(json.RawMessage(nil), s.Parameters...)
		specs[i] = s
	}
	return specs
}

// permittedLocked: the registered names an allowed list permits, sorted.
func (r *Registry) permittedLocked(allowed []string) []string {
	if len(allowed) == 0 {
		return sortedKeys(r.tools)
	}
	seen := make(map[string]bool, len(allowed))
	var names []string
	for _, n := range allowed {
		if prefix, ok := GroupPrefix(n); ok {
			for name := range r.tools {
				if strings.HasPrefix(name, prefix) && !seen[name] {
					seen[name] = true
					names = append(names, name)
				}
			}
			continue
		}
		if _, ok := r.tools[n]; ok && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// GroupSeparator joins a tool group (an MCP server) and a tool's own name:
// "<group>__<tool>". An allowed list grants a whole group with "<group>__*".
const GroupSeparator = "__"

// GroupPrefix returns "<group>__" for an allowed-list entry "<group>__*" that
// grants a whole group, and false for any other entry.
func GroupPrefix(entry string) (string, bool) {
	group, ok := strings.CutSuffix(entry, GroupSeparator+"*")
	if !ok || group == "" || !ValidToolName(group) {
		return "", false
	}
	return group + GroupSeparator, true
}

func isAllowed(name string, allowed []string) bool {
	if len(allowed) == 0 {
		return true
	}
	for _, a := range allowed {
		if a == name {
			return true
		}
		if prefix, ok := GroupPrefix(a); ok && strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// Execute routes a call and returns only its result; see Route.
func (r *Registry) Execute(ctx context.Context, call Call, allowed []string) Result {
	res, _ := r.Route(ctx, call, allowed)
	return res
}

// Routed is how a routed call went, with the policy's verdict when one was asked.
type Routed struct {
	Result  Result
	Outcome Outcome
	// Verdict is the policy's decision; nil when no policy was asked (no
	// policy, or the call failed an earlier check).
	Verdict *Verdict
}

// Route runs call.Name with call.Args if the agent's allowed list permits it
// (nil or empty: every tool) and tells how it went. It never fails: every
// problem becomes an error Result the model can read.
//
//   - unknown tool: OutcomeUnknown, `unknown tool "x"; available: a, b`
//   - registered but not allowed: OutcomeBlocked, the tool does not run
//   - arguments not valid JSON or not fitting the schema: OutcomeError,
//     naming the problem (`argument "path": required`); the tool does not run.
//     Empty arguments count as {}.
//   - the policy (WithPolicy) denies the call, or fails: OutcomeBlocked,
//     "blocked by policy: <reason>"; the tool does not run
//   - the policy asks and call.ApprovalID is empty: OutcomeNeedsApproval,
//     the tool does not run; with an ApprovalID the call runs
//   - the tool returns a Go error, an error Result, panics, exceeds the time
//     limit or ctx is cancelled: OutcomeError
//
// The tool runs in its own goroutine with a context bounded by the registry's
// timeout; if it ignores its context, Route still returns at the deadline and
// the goroutine is left to end on its own (Close waits for it). Content longer than the result limit is
// truncated with a note; tools can read that limit with MaxResultBytes(ctx).
func (r *Registry) Route(ctx context.Context, call Call, allowed []string) (Result, Outcome) {
	d := r.RouteDetail(ctx, call, allowed)
	return d.Result, d.Outcome
}

// RouteDetail is Route that also reports the policy's verdict.
func (r *Registry) RouteDetail(ctx context.Context, call Call, allowed []string) Routed {
	reg, ok := r.lookupForCall(ctx, call)
	var avail []string
	if !ok || !isAllowed(call.Name, allowed) {
		r.mu.RLock()
		avail = r.permittedForLocked(ScopeKey(call.Scope), allowed)
		r.mu.RUnlock()
	}

	if !ok {
		return Routed{Result: r.limit(errorResult("unknown tool %s; available: %s", quoteName(call.Name), listOrNone(avail))), Outcome: OutcomeUnknown}
	}
	if !isAllowed(call.Name, allowed) {
		r.audit(ctx, reg, call, OutcomeBlocked)
		return Routed{Result: r.limit(errorResult("tool %q is not permitted for this agent; available: %s", call.Name, listOrNone(avail))), Outcome: OutcomeBlocked}
	}

	args := bytes.TrimSpace(call.Args)
	if len(args) == 0 {
		args = []byte("{}")
	}
	v, err := decodeJSON(args)
	if err == nil {
		err = reg.schema.Validate(v)
	}
	if err != nil {
		r.auditInvalid(ctx, reg, call)
		return Routed{Result: r.limit(errorResult("invalid arguments for tool %q: %v", call.Name, err)), Outcome: OutcomeError}
	}
	call.Args = json.RawMessage(args)
	call.Allowed = allowed

	var verdict *Verdict
	if r.policy != nil {
		vd := r.decide(ctx, reg, call)
		verdict = &vd
		switch vd.Effect {
		case EffectAllow:
		case EffectAsk:
			if call.ApprovalID == "" {
				return Routed{Result: Result{Content: vd.Reason, IsError: true}, Outcome: OutcomeNeedsApproval, Verdict: verdict}
			}
		default: // deny, and anything that is not a known effect: fail closed
			r.auditDenied(ctx, reg, call)
			return Routed{Result: r.limit(errorResult("blocked by policy: %s", vd.Reason)), Outcome: OutcomeBlocked, Verdict: verdict}
		}
	}

	res, outcome := r.run(ctx, reg, call)
	r.audit(ctx, reg, call, outcome)
	return Routed{Result: r.limit(res), Outcome: outcome, Verdict: verdict}
}

// decide asks the policy about a call; an error, a panic or an unknown
// effect is a deny (fail closed), with the reason saying so.
func (r *Registry) decide(ctx context.Context, reg *registered, call Call) (v Verdict) {
	info := ToolInfo{Name: call.Name, ReadOnly: reg.readOnly}
	if h, ok := reg.tool.(Hinted); ok {
		hints := h.MCPHints()
		info.MCP = &hints
	}
	defer func() {
		if p := recover(); p != nil {
			r.logger.Error("tool policy panicked", "tool", call.Name, "run_id", call.RunID, "panic", p, "stack", string(debug.Stack()))
			v = Verdict{Effect: EffectDeny, Reason: "the policy failed (internal error)", Rule: "default:policy_error"}
		}
	}()
	v, err := r.policy.Decide(ctx, call, info)
	switch {
	case err != nil:
		r.logger.Warn("tool policy failed; the call is refused", "tool", call.Name, "run_id", call.RunID, "err", err)
		return Verdict{Effect: EffectDeny, Reason: "the policy could not decide: " + err.Error(), Rule: "default:policy_error"}
	case !v.Effect.Valid():
		return Verdict{Effect: EffectDeny, Reason: fmt.Sprintf("the policy gave an unknown effect %q", v.Effect), Rule: firstNonEmpty(v.Rule, "default:policy_error")}
	}
	if v.Reason == "" {
		v.Reason = "policy " + string(v.Effect)
		if v.Rule != "" {
			v.Reason += " (" + v.Rule + ")"
		}
	}
	return v
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// errTimeout is the cancellation cause of a call that ran out of time.
var errTimeout = errors.New("tool call timed out")

// ErrClosed is the cancellation cause of calls in flight when the registry
// closes; calls routed after Close do not run.
var ErrClosed = errors.New("tools: registry closed")

// Close cancels the calls in flight and waits until every tool goroutine has
// returned, also those Route stopped waiting for at their deadline, so no
// tool writes anything after its daemon has closed. It returns ctx's error
// if a tool that ignores its context is still running when ctx ends. Calls
// routed after Close get an error result. Safe to call twice.
func (r *Registry) Close(ctx context.Context) error {
	r.closeMu.Lock()
	r.closed = true
	r.closeMu.Unlock()
	r.endLife(ErrClosed)
	done := make(chan struct{})
	go func() {
		r.calls.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("tools: close: calls still running: %w", ctx.Err())
	}
}

// begin counts a call's goroutine unless the registry is closed.
func (r *Registry) begin() bool {
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.closed {
		return false
	}
	r.calls.Add(1)
	return true
}

type runOutput struct {
	res      Result
	err      error
	panicked bool
	panicVal any
}

func (r *Registry) run(parent context.Context, reg *registered, call Call) (Result, Outcome) {
	if err := parent.Err(); err != nil {
		return errorResult("tool %q was not run: %v", call.Name, err), OutcomeError
	}
	if !r.begin() {
		return errorResult("tool %q was not run: %v", call.Name, ErrClosed), OutcomeError
	}
	ctx, cancelLife := context.WithCancelCause(parent)
	stop := context.AfterFunc(r.life, func() { cancelLife(context.Cause(r.life)) })
	defer stop()
	defer cancelLife(nil)
	ctx, cancel := context.WithTimeoutCause(ctx, r.timeout, errTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, maxResultKey{}, r.maxResult)

	done := make(chan runOutput, 1)
	go func() {
		defer r.calls.Done()
		defer func() {
			if p := recover(); p != nil {
				r.logger.Error("tool panicked", "tool", call.Name, "run_id", call.RunID,
					"call_id", call.CallID, "panic", p, "stack", string(debug.Stack()))
				done <- runOutput{panicked: true, panicVal: p}
			}
		}()
		res, err := reg.tool.Run(ctx, call)
		done <- runOutput{res: res, err: err}
	}()

	var out runOutput
	select {
	case out = <-done:
	case <-ctx.Done():
		// A result that arrived together with the deadline still counts.
		select {
		case out = <-done:
		default:
			return r.interrupted(ctx, call.Name), OutcomeError
		}
	}
	switch {
	case out.panicked:
		return errorResult("tool %q failed: internal error (panic: %v)", call.Name, out.panicVal), OutcomeError
	case out.err != nil:
		if ctx.Err() != nil {
			return r.interrupted(ctx, call.Name), OutcomeError
		}
		return Result{Content: out.err.Error(), IsError: true}, OutcomeError
	case out.res.IsError:
		return out.res, OutcomeError
	}
	return out.res, OutcomeOK
}

func (r *Registry) interrupted(ctx context.Context, name string) Result {
	if errors.Is(context.Cause(ctx), errTimeout) {
		return errorResult("tool %q timed out after %s", name, r.timeout)
	}
	return errorResult("tool %q was cancelled: %v", name, context.Cause(ctx))
}

// limit truncates res.Content to the registry's maximum, on a UTF-8
// boundary, with a note; the whole content stays within the maximum.
func (r *Registry) limit(res Result) Result {
	res.Content = truncateContent(res.Content, r.maxResult)
	return res
}

func truncateContent(s string, max int) string {
	if len(s) <= max {
		return s
	}
	note := fmt.Sprintf("\n[truncated: showing the first %%d of %d bytes]", len(s))
	keep := max - len(fmt.Sprintf(note, max))
	if keep <= 0 {
		return cutUTF8(s, max)
	}
	kept := cutUTF8(s, keep)
	return kept + fmt.Sprintf(note, len(kept))
}

// cutUTF8 returns the longest prefix of s of at most n bytes that does not split a rune.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

type maxResultKey struct{}

// MaxResultBytes is the largest result content the router will pass on for
// the call whose context this is (DefaultMaxResultBytes outside a router), so a
// tool can shape long output itself instead of being cut off.
func MaxResultBytes(ctx context.Context) int {
	if n, ok := ctx.Value(maxResultKey{}).(int); ok && n > 0 {
		return n
	}
	return DefaultMaxResultBytes
}

func errorResult(format string, args ...any) Result {
	return Result{Content: fmt.Sprintf(format, args...), IsError: true}
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// quoteName quotes a tool name from the model, shortened if it is absurdly long.
func quoteName(name string) string {
	const max = 80
	if len(name) > max {
		return fmt.Sprintf("%q…", cutUTF8(name, max))
	}
	return fmt.Sprintf("%q", name)
}

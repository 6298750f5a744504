package policy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// Config is the operator's part of the policy (agent.config.json's "policy").
type Config struct {
	// Rules are consulted before any scope's, in every scope.
	Rules []Rule
	// Defaults turns the built-in high-risk defaults on (the usual) or off:
	// off, a call no rule matches runs, shell and MCP tools included.
	Defaults bool
	// ScratchDir is the workspace folder write_file and edit_file may write
	// in without asking ("scratch").
	ScratchDir string
	// AllowHosts are the hosts http_fetch may reach without asking, in
	// OPENINTERN_FETCH_ALLOW's format; the daemon adds that list too.
	AllowHosts []string
	// CacheTTL bounds how long a scope's rules are read from memory, so that
	// another daemon's write is seen within it (default 2s).
	CacheTTL time.Duration
}

// DefaultScratchDir is the scratch folder unless configured.
const DefaultScratchDir = "scratch"

// maxCached bounds the scopes whose rules are kept in memory.
const maxCached = 10000

// Engine is the tool policy: it implements tools.Policy. It is safe for
// concurrent use.
type Engine struct {
	st       store.PolicyStore
	cfgRules []compiled
	defaults *defaults // nil: turned off
	ttl      time.Duration
	now      func() time.Time
	log      *slog.Logger
	// Lookup, when set, tells Check what it knows of a tool by name (whether
	// it is an MCP tool and its hints), as the router would.
	Lookup func(name string) (tools.ToolInfo, bool)

	mu    sync.RWMutex
	cache map[store.Scope]cached
}

type cached struct {
	rules   []compiled
	version int64
	at      time.Time
}

// New returns an engine over the store's rules with the operator's config.
func New(st store.PolicyStore, cfg Config, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rules := withConfigIDs(cfg.Rules)
	comp, err := compileRules(rules)
	if err != nil {
		return nil, fmt.Errorf("policy: config rules: %w", err)
	}
	e := &Engine{st: st, cfgRules: comp, ttl: cfg.CacheTTL, now: time.Now, log: log, cache: map[store.Scope]cached{}}
	if e.ttl <= 0 {
		e.ttl = 2 * time.Second
	}
	if cfg.Defaults {
		dir, err := CheckScratchDir(cfg.ScratchDir)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		hosts, err := tools.ParseHostAllowList(cfg.AllowHosts)
		if err != nil {
			return nil, fmt.Errorf("policy: allow hosts: %w", err)
		}
		e.defaults = &defaults{scratchDir: dir, hosts: hosts, hostList: append([]string(nil), cfg.AllowHosts...)}
	}
	return e, nil
}

// withConfigIDs names the config's rules without an id "config:<n>".
func withConfigIDs(rules []Rule) []Rule {
	out := make([]Rule, len(rules))
	for i, r := range rules {
		if r.ID == "" {
			r.ID = fmt.Sprintf("config:%d", i+1)
		}
		out[i] = r
	}
	return out
}

// CheckScratchDir cleans a scratch folder name ("" is the default); it must
// be a relative path inside the workspace, not its root.
func CheckScratchDir(dir string) (string, error) {
	if dir == "" {
		return DefaultScratchDir, nil
	}
	rel, bad := tools.CheckPath(dir)
	if bad != "" || rel == "." {
		return "", fmt.Errorf("scratch folder %q must be a folder inside the workspace, like \"scratch\"", dir)
	}
	return rel, nil
}

// ConfigRules are the operator's rules (read-only over the API).
func (e *Engine) ConfigRules() []Rule {
	out := make([]Rule, len(e.cfgRules))
	for i, c := range e.cfgRules {
		out[i] = c.Rule
	}
	return out
}

// Defaults describes the built-in defaults in effect (none when off).
func (e *Engine) Defaults() []string {
	if e.defaults == nil {
		return []string{}
	}
	return e.defaults.describe()
}

// Decision is a verdict with what decided it, for a dry run.
type Decision struct {
	tools.Verdict
	// Source is where the deciding rule came from: "config", "project"
	// (the scope's project's rules), "scope" (the scope's rules without
	// project), "default" or "none" (nothing matched: allowed).
	Source string `json:"source"`
	// Matched is the rule that decided, when a rule did.
	Matched *Rule `json:"matched,omitempty"`
}

// Decide implements tools.Policy.
func (e *Engine) Decide(ctx context.Context, call tools.Call, info tools.ToolInfo) (tools.Verdict, error) {
	d, err := e.Explain(ctx, call, info)
	return d.Verdict, err
}

// Explain decides the call and says what decided. A store error refuses the
// call (fail closed) with a reason that says so, and is also returned.
func (e *Engine) Explain(ctx context.Context, call tools.Call, info tools.ToolInfo) (Decision, error) {
	d, err := e.explain(ctx, call, info)
	if err != nil {
		e.log.ErrorContext(ctx, "policy: cannot read the scope's rules; the call is refused", "tool", call.Name, "err", err)
		return Decision{Verdict: tools.Verdict{Effect: tools.EffectDeny, Rule: "error",
			Reason: "the tool policy could not be read, so the call is refused; try again later"}, Source: "error"}, err
	}
	if d.Effect == tools.EffectAsk && call.ApprovalID != "" {
		d.Effect = tools.EffectAllow
		d.Reason = "approved by a person (approval " + call.ApprovalID + ")"
	}
	return d, nil
}

func (e *Engine) explain(ctx context.Context, call tools.Call, info tools.ToolInfo) (Decision, error) {
	var args lazyArgs
	if d, ok := first(e.cfgRules, call, &args, "config"); ok {
		return d, nil
	}
	layers := []struct {
		scope  store.Scope
		source string
	}{{call.Scope, "scope"}}
	if call.Scope.ProjectID != "" {
		base := call.Scope
		base.ProjectID = ""
		layers = []struct {
			scope  store.Scope
			source string
		}{{call.Scope, "project"}, {base, "scope"}}
	}
	for _, l := range layers {
		c, err := e.rules(ctx, l.scope)
		if err != nil {
			return Decision{}, err
		}
		if d, ok := first(c.rules, call, &args, l.source); ok {
			return d, nil
		}
	}
	if e.defaults != nil {
		if v, ok := e.defaults.decide(call, info); ok {
			return Decision{Verdict: v, Source: "default"}, nil
		}
	}
	return Decision{Verdict: tools.Verdict{Effect: tools.EffectAllow}, Source: "none"}, nil
}

func first(rules []compiled, call tools.Call, args *lazyArgs, source string) (Decision, bool) {
	for i := range rules {
		if rules[i].matches(call, args) {
			r := rules[i].Rule
			reason := r.Reason
			if reason == "" {
				reason = fmt.Sprintf("policy rule %s says %s for %s", r.ID, r.Effect, call.Name)
			}
			return Decision{Verdict: tools.Verdict{Effect: r.Effect, Reason: reason, Rule: r.ID}, Source: source, Matched: &r}, true
		}
	}
	return Decision{}, false
}

// rules returns the scope's compiled rules, from memory when read within the TTL.
func (e *Engine) rules(ctx context.Context, scope store.Scope) (cached, error) {
	now := e.now()
	e.mu.RLock()
	c, ok := e.cache[scope]
	e.mu.RUnlock()
	if ok && now.Sub(c.at) < e.ttl {
		return c, nil
	}
	p, err := e.st.GetToolPolicy(ctx, scope)
	if err != nil {
		return cached{}, fmt.Errorf("policy: read the rules of the scope: %w", err)
	}
	rules, err := decodeRules(p.Rules)
	if err != nil {
		return cached{}, fmt.Errorf("policy: the stored rules of the scope: %w", err)
	}
	comp, err := compileRules(rules)
	if err != nil {
		return cached{}, fmt.Errorf("policy: the stored rules of the scope: %w", err)
	}
	c = cached{rules: comp, version: p.Version, at: now}
	e.remember(scope, c)
	return c, nil
}

// remember caches c unless a newer version is there already (a read that
// raced a write must not bring back the rules it replaced).
func (e *Engine) remember(scope store.Scope, c cached) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.cache[scope]; ok && old.version > c.version {
		return
	}
	if len(e.cache) >= maxCached {
		clear(e.cache) // crude, but a daemon with this many active scopes rereads once
	}
	e.cache[scope] = c
}

func decodeRules(raw json.RawMessage) ([]Rule, error) {
	var rules []Rule
	if len(raw) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(raw, &rules); err != nil {
		return nil, err
	}
	return rules, nil
}

// ScopePolicy is a scope's stored rules and their version.
type ScopePolicy struct {
	Rules     []Rule    `json:"rules"`
	Version   int64     `json:"version"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Get returns the scope's own rules (not its project-less scope's).
func (e *Engine) Get(ctx context.Context, scope store.Scope) (ScopePolicy, error) {
	p, err := e.st.GetToolPolicy(ctx, scope)
	if err != nil {
		return ScopePolicy{}, fmt.Errorf("policy: get: %w", err)
	}
	rules, err := decodeRules(p.Rules)
	if err != nil {
		return ScopePolicy{}, fmt.Errorf("policy: the stored rules of the scope: %w", err)
	}
	if rules == nil {
		rules = []Rule{}
	}
	return ScopePolicy{Rules: rules, Version: p.Version, UpdatedBy: p.UpdatedBy, UpdatedAt: p.UpdatedAt}, nil
}

// Put replaces the scope's rules if their version is still ifVersion
// (store.AnyVersion: whatever it is). Rules are validated first (a
// *RuleError names the bad one); a rule without an id gets one, and a rule
// that is new or changed is stamped with by and the time. store.ErrConflict
// when the version moved.
func (e *Engine) Put(ctx context.Context, scope store.Scope, rules []Rule, ifVersion int64, by string) (ScopePolicy, error) {
	if _, err := compileRules(rules); err != nil {
		return ScopePolicy{}, err
	}
	prev, err := e.Get(ctx, scope)
	if err != nil {
		return ScopePolicy{}, err
	}
	stamped, err := e.stamp(prev.Rules, rules, by)
	if err != nil {
		return ScopePolicy{}, err
	}
	comp, err := compileRules(stamped)
	if err != nil {
		return ScopePolicy{}, err
	}
	raw, err := json.Marshal(stamped)
	if err != nil {
		return ScopePolicy{}, fmt.Errorf("policy: encode rules: %w", err)
	}
	p, err := e.st.PutToolPolicy(ctx, scope, raw, ifVersion, by)
	if err != nil {
		return ScopePolicy{}, fmt.Errorf("policy: put: %w", err)
	}
	e.remember(scope, cached{rules: comp, version: p.Version, at: e.now()})
	return ScopePolicy{Rules: stamped, Version: p.Version, UpdatedBy: p.UpdatedBy, UpdatedAt: p.UpdatedAt}, nil
}

// stamp fills ids, authors and times: a rule equal to the stored one of the
// same id keeps its stamp.
func (e *Engine) stamp(prev, rules []Rule, by string) ([]Rule, error) {
	old := make(map[string]Rule, len(prev))
	for _, r := range prev {
		old[r.ID] = r
	}
	now := e.now().UTC().Truncate(time.Microsecond)
	out := make([]Rule, len(rules))
	for i, r := range rules {
		if r.ID == "" {
			id, err := newRuleID()
			if err != nil {
				return nil, err
			}
			r.ID = id
		}
		if o, ok := old[r.ID]; ok && o.sameMatch(r) {
			r.CreatedBy, r.UpdatedAt = o.CreatedBy, o.UpdatedAt
		} else {
			r.CreatedBy, r.UpdatedAt = by, now
		}
		out[i] = r
	}
	return out, nil
}

func newRuleID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("policy: rule id: %w", err)
	}
	return "pr_" + hex.EncodeToString(b[:]), nil
}

// maxAllowAlwaysTries bounds AllowAlways' retries when other writers keep
// moving the version. Each round of n racing writers lets one through, so
// the last of them needs n tries: 8 failed with 10 at once on a busy machine.
// Retries after the first wait a little, at random, so that racers spread out.
const maxAllowAlwaysTries = 32

// ErrTooManyRules: the scope has MaxRules rules already.
var ErrTooManyRules = fmt.Errorf("the scope has %d policy rules, the most it may have", MaxRules)

// AllowAlways appends to the scope's rules an allow rule for exactly this
// tool and agent (by id), as "approve always" does, and returns it. If such a
// rule is there already, it is returned and nothing is written. It is
// appended, not put first: the scope's own earlier rules (a deny, or an ask an
// admin wrote on purpose) still come first, so it lifts the built-in
// defaults' ask, not an admin's rule. Safe under concurrent writers: a write
// that lost the version race is retried on the new rules.
func (e *Engine) AllowAlways(ctx context.Context, scope store.Scope, tool, agentID, by string) (Rule, error) {
	if tool == "" || agentID == "" {
		return Rule{}, errors.New("policy: allow always needs a tool and an agent")
	}
	want := Rule{Tool: tool, Agent: "id:" + agentID, Effect: tools.EffectAllow,
		Reason:      "approved always for this tool and agent",
		Description: fmt.Sprintf("Approve always: %s for agent %s", tool, agentID)}
	if _, err := compileRules([]Rule{want}); err != nil {
		return Rule{}, err
	}
	// A tool or agent id with a wildcard would allow more than the one.
	if pt, _ := compilePattern(tool); !pt.isLit {
		return Rule{}, fmt.Errorf("policy: allow always: tool name %q has a wildcard", tool)
	}
	if pa, _ := compilePattern(agentID); !pa.isLit {
		return Rule{}, fmt.Errorf("policy: allow always: agent id %q has a wildcard", agentID)
	}
	for try := range maxAllowAlwaysTries {
		if try > 0 {
			select {
			case <-time.After(time.Duration(mrand.Int64N(int64(min(try, 10)) * int64(time.Millisecond)))):
			case <-ctx.Done():
				return Rule{}, ctx.Err()
			}
		}
		cur, err := e.Get(ctx, scope)
		if err != nil {
			return Rule{}, err
		}
		for _, r := range cur.Rules {
			if r.Tool == want.Tool && r.Agent == want.Agent && r.Effect == tools.EffectAllow && r.Role == "" && len(r.Args) == 0 {
				return r, nil
			}
		}
		if len(cur.Rules) >= MaxRules {
			return Rule{}, fmt.Errorf("policy: allow always: %w", ErrTooManyRules)
		}
		next, err := e.Put(ctx, scope, append(cur.Rules, want), cur.Version, by)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return Rule{}, err
		}
		return next.Rules[len(next.Rules)-1], nil
	}
	return Rule{}, fmt.Errorf("policy: allow always: the rules kept changing: %w", store.ErrConflict)
}

// Check is a dry run: the decision on a call of tool by the agent (id and
// name), in role, with args, in scope. ToolInfo comes from Lookup if set.
func (e *Engine) Check(ctx context.Context, call tools.Call) (Decision, error) {
	info := tools.ToolInfo{Name: call.Name}
	if e.Lookup != nil {
		if i, ok := e.Lookup(call.Name); ok {
			info = i
		}
	}
	return e.Explain(ctx, call, info)
}

package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
)

// A scope overlay holds tools only one scope sees (a tenant's MCP servers):
// offered by SpecsFor and routed by Route for calls of that scope, never for
// another's. The key is the org and project (ScopeKey): the users of a
// project share its tools.

// ScopeKey is the overlay key of a scope.
func ScopeKey(s store.Scope) string {
	org, project := store.MCPScopeKey(s)
	return org + "\x00" + project
}

// ScopeActivator is told a scope is about to use its tools (its agents'
// specs are being built, or a call names a tool the scope does not have
// yet), so the tools' source can start them. It may block a bounded time.
type ScopeActivator func(ctx context.Context, scope store.Scope)

// SetScopeActivator sets the activator; call it before the registry is used.
func (r *Registry) SetScopeActivator(a ScopeActivator) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.activate = a
}

// RegisterScoped adds a tool only the scope of key sees. Its name must not
// be a daemon-wide tool's, nor another of the scope's.
func (r *Registry) RegisterScoped(key string, t Tool) error {
	reg, err := compileTool(t)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.tools[reg.spec.Name]; dup {
		return fmt.Errorf("tools: register: %q is a daemon-wide tool's name", reg.spec.Name)
	}
	if r.scoped == nil {
		r.scoped = map[string]map[string]*registered{}
	}
	m := r.scoped[key]
	if m == nil {
		m = map[string]*registered{}
		r.scoped[key] = m
	}
	if _, dup := m[reg.spec.Name]; dup {
		return fmt.Errorf("tools: register: duplicate tool name %q in the scope", reg.spec.Name)
	}
	m[reg.spec.Name] = reg
	return nil
}

// UnregisterScoped removes a scope's tool; it reports whether it was there.
func (r *Registry) UnregisterScoped(key, name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.scoped[key]
	_, ok := m[name]
	delete(m, name)
	if len(m) == 0 {
		delete(r.scoped, key)
	}
	return ok
}

// SpecsFor is Specs for an agent of scope: the daemon-wide tools and the
// scope's own, after telling the activator the scope is in use.
func (r *Registry) SpecsFor(ctx context.Context, scope store.Scope, allowed []string) []llm.ToolSpec {
	r.mu.RLock()
	activate := r.activate
	r.mu.RUnlock()
	if activate != nil {
		activate(ctx, scope)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	key := ScopeKey(scope)
	names := r.permittedForLocked(key, allowed)
	specs := make([]llm.ToolSpec, len(names))
	for i, n := range names {
		reg, _ := r.lookupLocked(key, n)
		s := reg.spec
		s.Parameters = append(json.RawMessage(nil), s.Parameters...)
		specs[i] = s
	}
	return specs
}

// lookupLocked finds a tool a call of the scope of key may reach.
func (r *Registry) lookupLocked(key, name string) (*registered, bool) {
	if reg, ok := r.tools[name]; ok {
		return reg, true
	}
	reg, ok := r.scoped[key][name]
	return reg, ok
}

// lookupForCall is Route's lookup: a name the scope lacks that looks like a
// group's tool ("<server>__<tool>") activates the scope once, since its
// server may not have been started yet (after a restart, or idle).
func (r *Registry) lookupForCall(ctx context.Context, call Call) (*registered, bool) {
	key := ScopeKey(call.Scope)
	r.mu.RLock()
	reg, ok := r.lookupLocked(key, call.Name)
	activate := r.activate
	r.mu.RUnlock()
	if ok || activate == nil || call.Scope.OrgID == "" || !strings.Contains(call.Name, GroupSeparator) {
		return reg, ok
	}
	activate(ctx, call.Scope)
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.lookupLocked(key, call.Name)
}

// ReadOnly reports whether name is a tool of scope's (the daemon's or the
// scope's own) that declares it changes nothing (see ReadOnly). An unknown
// name is not.
func (r *Registry) ReadOnly(scope store.Scope, name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	reg, ok := r.lookupLocked(ScopeKey(scope), name)
	return ok && reg.readOnly
}

// permittedForLocked is permittedLocked over the daemon-wide and the
// scope's tools.
func (r *Registry) permittedForLocked(key string, allowed []string) []string {
	names := r.permittedLocked(allowed)
	own := r.scoped[key]
	if len(own) == 0 {
		return names
	}
	for name := range own {
		if isAllowed(name, allowed) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// compileTool checks a tool as Register does.
func compileTool(t Tool) (*registered, error) {
	if t == nil {
		return nil, errors.New("tools: register: nil tool")
	}
	spec := t.Spec()
	if !ValidToolName(spec.Name) {
		return nil, fmt.Errorf("tools: register: invalid tool name %q (want 1-64 of a-z A-Z 0-9 _ -)", spec.Name)
	}
	if len(bytes.TrimSpace(spec.Parameters)) == 0 {
		spec.Parameters = emptyObjectSchema
	}
	spec.Parameters = append(json.RawMessage(nil), spec.Parameters...)
	schema, err := CompileSchema(spec.Parameters)
	if err != nil {
		return nil, fmt.Errorf("tools: register %q: %w", spec.Name, err)
	}
	if schema.Type() != "object" {
		return nil, fmt.Errorf("tools: register %q: parameters schema must have type \"object\", got %q", spec.Name, schema.Type())
	}
	return &registered{tool: t, spec: spec, schema: schema, readOnly: IsReadOnly(t)}, nil
}

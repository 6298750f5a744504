package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ToolPolicy is a scope's tool policy rules as stored: a JSON array of rules
// that package policy wrote and validated (the store keeps it whole, so a
// scope's rules change in one write and carry one version).
type ToolPolicy struct {
	Rules json.RawMessage `json:"rules"`
	// Version counts the writes of the scope's rules: 0 when there are none
	// yet, then 1, 2, ... A write names the version it read (optimistic
	// concurrency), so of two admins editing at once the second is refused.
	Version   int64     `json:"version"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// AnyVersion as PutToolPolicy's ifVersion overwrites whatever is stored.
const AnyVersion int64 = -1

// MaxToolPolicyBytes bounds a scope's stored rules.
const MaxToolPolicyBytes = 1 << 20

// PolicyStore keeps each scope's tool policy rules. The scope is the whole
// tenant (org, user and project): a project's rules and the rules of the
// scope without project are two entries, which package policy layers.
type PolicyStore interface {
	// GetToolPolicy returns the scope's rules; a scope that has none gets
	// Rules "[]" and Version 0, not ErrNotFound.
	GetToolPolicy(ctx context.Context, scope Scope) (ToolPolicy, error)
	// PutToolPolicy replaces the scope's rules if their version is still
	// ifVersion (0: none stored yet; AnyVersion: whatever it is), and returns
	// what is stored now, its version one more. ErrConflict otherwise.
	PutToolPolicy(ctx context.Context, scope Scope, rules json.RawMessage, ifVersion int64, by string) (ToolPolicy, error)
}

// ErrVersionMismatch: the rules changed since the version the writer read.
var ErrVersionMismatch = fmt.Errorf("the policy changed since that version: %w", ErrConflict)

// CheckToolPolicyPut refuses what no store keeps: a bad scope, rules that
// are not a JSON array, too big, with a NUL (PostgreSQL text cannot hold
// one), or a version below AnyVersion.
func CheckToolPolicyPut(scope Scope, rules json.RawMessage, ifVersion int64) error {
	if err := CheckScope(scope); err != nil {
		return err
	}
	switch {
	case ifVersion < AnyVersion:
		return fmt.Errorf("policy version %d is negative", ifVersion)
	case len(rules) > MaxToolPolicyBytes:
		return fmt.Errorf("policy rules are %d bytes, at most %d", len(rules), MaxToolPolicyBytes)
	case bytes.IndexByte(rules, 0) >= 0 || bytes.Contains(rules, []byte(`\u0000`)):
		return errors.New("policy rules hold a NUL character")
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(rules, &arr); err != nil || arr == nil {
		return errors.New("policy rules must be a JSON array")
	}
	return nil
}

// EmptyToolPolicy is what a scope without rules has.
func EmptyToolPolicy() ToolPolicy { return ToolPolicy{Rules: json.RawMessage(`[]`)} }

// NextToolPolicy is the policy stored over prev (nil: none stored) by a
// write of rules that read ifVersion, or ErrVersionMismatch.
func NextToolPolicy(prev *ToolPolicy, rules json.RawMessage, ifVersion int64, by string, now time.Time) (ToolPolicy, error) {
	cur := int64(0)
	if prev != nil {
		cur = prev.Version
	}
	if ifVersion != AnyVersion && ifVersion != cur {
		return ToolPolicy{}, fmt.Errorf("stored version %d, written over %d: %w", cur, ifVersion, ErrVersionMismatch)
	}
	return ToolPolicy{Rules: append(json.RawMessage(nil), rules...), Version: cur + 1, UpdatedBy: by, UpdatedAt: now}, nil
}

// Package tools holds the tool registry and router an agent uses, and the
// built-in tools. Every tool has a JSON schema; an unknown tool or arguments that
// do not fit the schema give the model an error result instead of failing the run.
package tools

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
)

// Call is one invocation of a tool by an agent during a run.
type Call struct {
	Scope       store.Scope
	AgentID     string
	AgentName   string // the agent's name, for policy rules that name it
	Role        string // the id of the role the agent acts in within its group, if any
	RunID       string
	GroupID     string // the group the run works in, if any
	ParentRunID string // the group run a member's run belongs to, if any
	SessionKey  string
	CallID      string
	Name        string
	Args        json.RawMessage
	// Allowed is the caller's permitted tools as the router applied them (set
	// by Route), so a tool that acts for the agent cannot widen them.
	Allowed []string
	// Key names this call across attempts: the same when a run resumed after
	// a crash runs the call again, different for every other call (model call
	// ids repeat across steps, so it is more than CallID). Tools with side
	// effects derive their ids from it (DerivedID) and insert if absent, so a
	// call that is run again applies its effect once. Empty outside a run.
	Key string
	// ApprovalID is set by the run when a person approved exactly this call
	// (its run, tool and arguments); a policy's ask then lets it run.
	ApprovalID string
}

// DerivedID returns prefix plus 32 hex digits derived from the call's Key and
// parts, or "" when the call has no Key (the caller then picks a fresh id).
func DerivedID(prefix string, call Call, parts ...string) string {
	if call.Key == "" {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(call.Key))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return prefix + hex.EncodeToString(h.Sum(nil))[:32]
}

// Result is what the model sees. IsError marks a failed call; Content explains it.
type Result struct {
	Content string `json:"content"`
	IsError bool   `json:"is_error"`
}

// Tool is one capability an agent may call.
type Tool interface {
	Spec() llm.ToolSpec
	Run(ctx context.Context, call Call) (Result, error)
}

// Package tools holds the tool registry and router an agent uses, and the
// built-in tools. Every tool has a JSON schema; an unknown tool or arguments that
// do not fit the schema give the model an error result instead of failing the run.
package tools

import (
	"context"
	"encoding/json"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
)

// Call is one invocation of a tool by an agent during a run.
type Call struct {
	Scope       store.Scope
	AgentID     string
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

package tools

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// Effect is what a tool policy decides for one call.
type Effect string

// Effects of a Verdict.
const (
	// EffectAllow: the call runs.
	EffectAllow Effect = "allow"
	// EffectDeny: the call does not run; the model is told why (tool.blocked).
	EffectDeny Effect = "deny"
	// EffectAsk: the call waits for a person to approve it (tool.requires_approval).
	EffectAsk Effect = "ask"
)

// Valid reports whether e is one of the three effects.
func (e Effect) Valid() bool {
	return e == EffectAllow || e == EffectDeny || e == EffectAsk
}

// Verdict is a policy's decision on one call.
type Verdict struct {
	Effect Effect `json:"effect"`
	// Reason is told to the model (deny) or shown to the approver (ask).
	Reason string `json:"reason,omitempty"`
	// Rule names what decided: a rule's id, or "default:<why>" for a built-in default.
	Rule string `json:"rule,omitempty"`
}

// MCPHints are the annotations an MCP server gave one of its tools. A nil
// hint was not given; Annotated is false when the server gave none at all.
type MCPHints struct {
	Server      string `json:"server"`
	Annotated   bool   `json:"annotated"`
	ReadOnly    *bool  `json:"read_only,omitempty"`
	Destructive *bool  `json:"destructive,omitempty"`
	Idempotent  *bool  `json:"idempotent,omitempty"`
	OpenWorld   *bool  `json:"open_world,omitempty"`
}

// Hinted is implemented by a tool that comes from an MCP server.
type Hinted interface {
	MCPHints() MCPHints
}

// ToolInfo is what a policy knows of the called tool besides the call.
type ToolInfo struct {
	Name string
	// ReadOnly: the tool declares that it changes nothing (see ReadOnly).
	ReadOnly bool
	// MCP is set for a tool of an MCP server.
	MCP *MCPHints
}

// Policy decides whether a call may run, must wait for a person, or is
// refused. It is consulted after the allowed list and the argument schema,
// so Args is valid JSON that fits the tool's schema. Decide must be safe for
// concurrent use; an error refuses the call (fail closed).
type Policy interface {
	Decide(ctx context.Context, call Call, info ToolInfo) (Verdict, error)
}

// PolicyFunc adapts a function to Policy.
type PolicyFunc func(ctx context.Context, call Call, info ToolInfo) (Verdict, error)

// Decide calls f.
func (f PolicyFunc) Decide(ctx context.Context, call Call, info ToolInfo) (Verdict, error) {
	return f(ctx, call, info)
}

// ArgsHash is the SHA-256 (hex) of a call's arguments in canonical form (the
// JSON re-encoded with sorted keys and no spaces; empty arguments are {}), so
// an approval binds to what the arguments say, not to how they were spaced.
// Arguments that are not valid JSON are hashed as they are.
func ArgsHash(args json.RawMessage) string {
	b := bytes.TrimSpace(args)
	if len(b) == 0 {
		b = []byte("{}")
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err == nil {
		if canon, err := json.Marshal(v); err == nil {
			b = canon
		}
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

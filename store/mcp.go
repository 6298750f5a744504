package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MCPToolPin is the definition of an MCP server's tool that an admin trusts.
// A tool is pinned when first seen (trust on first use); a definition seen
// later with another hash is kept pending and the tool stays disabled until
// an admin approves it, so a server cannot change what a granted tool says it
// does (tool poisoning) behind the admins' backs. Servers come from the
// daemon's config file, so pins are daemon-wide, not scoped.
type MCPToolPin struct {
	Server string `json:"server"`
	Tool   string `json:"tool"`
	// Hash is the SHA-256 (hex) of the trusted definition's canonical JSON.
	Hash       string          `json:"hash"`
	Definition json.RawMessage `json:"definition"`
	// PendingHash is a changed definition seen and not approved; "" if none.
	PendingHash       string          `json:"pending_hash,omitempty"`
	PendingDefinition json.RawMessage `json:"pending_definition,omitempty"`
	PinnedAt          time.Time       `json:"pinned_at"`
	UpdatedAt         time.Time       `json:"updated_at"`
}

// MCPPinStore keeps the pins of MCP tools.
type MCPPinStore interface {
	// ObserveMCPTool records that server offers tool with the definition def
	// (hash is its SHA-256): pinned if the tool is new, the pending change
	// set if it differs from the pin, cleared if it is the pinned one again.
	// It returns the pin afterwards; the tool may be used iff pin.Hash == hash.
	ObserveMCPTool(ctx context.Context, server, tool, hash string, def json.RawMessage) (MCPToolPin, error)
	// ListMCPToolPins lists a server's pins by tool name.
	ListMCPToolPins(ctx context.Context, server string) ([]MCPToolPin, error)
	// ApproveMCPTool trusts the pending definition (whose hash must be hash,
	// or any when hash is ""). ErrNotFound: no such pin; ErrNothingPending or
	// ErrConflict (another definition is pending) otherwise.
	ApproveMCPTool(ctx context.Context, server, tool, hash string) (MCPToolPin, error)
}

// ErrNothingPending: the tool's definition has not changed since it was pinned.
var ErrNothingPending = fmt.Errorf("no changed definition is waiting for approval: %w", ErrConflict)

// ObserveMCPPin is the pin after def (with hash) was seen at now, given the
// stored pin (nil: none); write says whether it must be stored.
func ObserveMCPPin(prev *MCPToolPin, server, tool, hash string, def json.RawMessage, now time.Time) (next MCPToolPin, write bool) {
	if prev == nil {
		return MCPToolPin{Server: server, Tool: tool, Hash: hash, Definition: def, PinnedAt: now, UpdatedAt: now}, true
	}
	next = *prev
	switch hash {
	case prev.Hash:
		if prev.PendingHash == "" {
			return next, false
		}
		next.PendingHash, next.PendingDefinition = "", nil
	case prev.PendingHash:
		return next, false
	default:
		next.PendingHash, next.PendingDefinition = hash, def
	}
	next.UpdatedAt = now
	return next, true
}

// ApproveMCPPin is the pin once its pending definition is approved at now.
func ApproveMCPPin(prev MCPToolPin, hash string, now time.Time) (MCPToolPin, error) {
	if prev.PendingHash == "" {
		return MCPToolPin{}, ErrNothingPending
	}
	if hash != "" && hash != prev.PendingHash {
		return MCPToolPin{}, fmt.Errorf("the pending definition is %s, not %s: %w", prev.PendingHash, hash, ErrConflict)
	}
	next := prev
	next.Hash, next.Definition = prev.PendingHash, prev.PendingDefinition
	next.PendingHash, next.PendingDefinition = "", nil
	next.PinnedAt, next.UpdatedAt = now, now
	return next, nil
}

// CheckMCPPinKey refuses an empty server or tool name.
func CheckMCPPinKey(server, tool string) error {
	if server == "" || tool == "" {
		return errors.New("mcp pin: server and tool are required")
	}
	return nil
}

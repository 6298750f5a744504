package events

import (
	"context"

	"github.com/openintern/openintern/store"
)

// ControlKind is what a Control asks of the node that owns its agent or group.
type ControlKind string

// Control kinds.
const (
	ControlWake   ControlKind = "wake"   // the agent may have work
	ControlCancel ControlKind = "cancel" // abort the agent's running run RunID at once
	ControlPause  ControlKind = "pause"  // stop the agent at its next step boundary
	ControlResume ControlKind = "resume" // let a paused agent run again
	ControlGroup  ControlKind = "group"  // group run RunID of GroupID changed (a member finished, a cancel)
)

// Control is one instruction for the daemon that owns an agent (or a group).
type Control struct {
	Kind    ControlKind `json:"kind"`
	Scope   store.Scope `json:"scope"`
	AgentID string      `json:"agent_id,omitempty"`
	GroupID string      `json:"group_id,omitempty"`
	RunID   string      `json:"run_id,omitempty"`
	From    string      `json:"from,omitempty"` // the sending node, for logs
}

// HandleFunc acts on a Control on this node. It must be safe for concurrent
// use and return quickly (hand the work off).
type HandleFunc func(c Control)

// RouteFunc names the node a Control should be handled on: the owner of its
// agent's (or group's) lease, or, when nobody owns it, the node to give it
// to (for example the least loaded). "" means this node.
type RouteFunc func(ctx context.Context, c Control) (nodeID string)

// Dispatcher delivers Controls to the node that should handle them.
type Dispatcher interface {
	// Dispatch hands c to its node's HandleFunc, this node's included.
	// Delivery is at least once; when it cannot reach the other node it
	// handles c here instead (the store's fencing keeps that safe) and
	// says so in the error.
	Dispatch(ctx context.Context, c Control) error
	// Close stops the dispatcher; safe to call more than once.
	Close() error
}

// LocalDispatcher is the Dispatcher of a single daemon: every Control is
// handled here, on the caller's goroutine.
type LocalDispatcher struct{ Handle HandleFunc }

// Dispatch calls d.Handle(c).
func (d LocalDispatcher) Dispatch(_ context.Context, c Control) error {
	d.Handle(c)
	return nil
}

// Close does nothing.
func (LocalDispatcher) Close() error { return nil }

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Approval statuses.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
)

// ValidApprovalStatus reports whether s is one of the four statuses.
func ValidApprovalStatus(s string) bool {
	return s == ApprovalPending || s == ApprovalApproved || s == ApprovalDenied || s == ApprovalExpired
}

// ErrApprovalExpired: the approval's time ran out before it was decided; it
// is expired now (the store marked it so and resumed its run).
var ErrApprovalExpired = fmt.Errorf("approval expired: %w", ErrConflict)

// Approval is a tool call a policy asked a person to approve. It binds to
// the run, the call (CallKey: run, step, position and call id) and the
// arguments (ArgsHash): another call needs another approval.
type Approval struct {
	Scope     Scope  `json:"-"`
	ID        string `json:"approval_id"`
	RunID     string `json:"run_id"`
	AgentID   string `json:"agent_id"`
	Step      int    `json:"step"`
	CallIndex int    `json:"call_index"`
	CallID    string `json:"call_id"`
	CallKey   string `json:"call_key"`
	Tool      string `json:"tool"`
	// Arguments are the call's arguments as the model gave them (JSON text).
	Arguments string `json:"arguments"`
	ArgsHash  string `json:"args_hash"`
	// Reason and Rule are the policy's: why it asks, and what decided.
	Reason         string     `json:"reason"`
	Rule           string     `json:"rule,omitempty"`
	Status         string     `json:"status"`
	DecidedBy      string     `json:"decided_by,omitempty"`
	DecisionReason string     `json:"decision_reason,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      time.Time  `json:"expires_at"`
	DecidedAt      *time.Time `json:"decided_at,omitempty"`
}

// ApprovalFilter selects approvals within a scope; empty fields match all.
type ApprovalFilter struct {
	Status  string
	AgentID string
	RunID   string
}

// ApprovalDecision decides a pending approval.
type ApprovalDecision struct {
	Status string // ApprovalApproved, ApprovalDenied or ApprovalExpired
	By     string // who decided ("user:<id>", "system")
	Reason string
}

// ApprovalStore keeps approvals. Waiting for one and deciding it move the
// approval's run between running and waiting_approval in the same
// transaction; while an agent has a run waiting, ClaimNextRun gives it
// nothing (its other work waits behind the run, in order).
type ApprovalStore interface {
	// WaitForApproval stores a (a pending approval of a running run) unless
	// the run has one for a.CallKey already, stores cp and events, and puts
	// the run in waiting_approval, in one transaction. It returns the
	// approval as stored (the earlier one, if any: a call asks once) and the
	// stored events. ErrConflict, with nothing stored, when the run is not
	// running; ErrNotFound when there is no such run.
	WaitForApproval(ctx context.Context, scope Scope, a Approval, cp *Checkpoint, events []Event) (Approval, []Event, error)
	GetApproval(ctx context.Context, scope Scope, id string) (Approval, error)
	// GetApprovalForCall returns the approval of a run's call (by CallKey).
	GetApprovalForCall(ctx context.Context, scope Scope, runID, callKey string) (Approval, error)
	// ListApprovals returns a page of the scope's approvals matching filter,
	// newest first, and how many match.
	ListApprovals(ctx context.Context, scope Scope, filter ApprovalFilter, page Page) ([]Approval, int, error)
	// ResolveApproval decides a pending approval, puts its run back to
	// running (claimable again) and appends approval.resolved to the run, in
	// one transaction; it returns the approval and the stored event. When
	// the approval is not pending: ErrConflict, with the approval as it is.
	// When its time ran out (and d is not already an expiry), it is expired
	// instead, its run resumed, and the error is ErrApprovalExpired. Of
	// concurrent resolvers exactly one wins.
	ResolveApproval(ctx context.Context, scope Scope, id string, d ApprovalDecision) (Approval, []Event, error)
	// DueApprovals returns up to limit pending approvals, in every scope,
	// whose time ran out by now: an unscoped read for the daemon's expiry sweep.
	DueApprovals(ctx context.Context, now time.Time, limit int) ([]Approval, error)
}

// CheckNewApproval checks an approval WaitForApproval is given.
func CheckNewApproval(a Approval) error {
	switch {
	case a.ID == "" || a.RunID == "" || a.CallKey == "" || a.Tool == "":
		return errors.New("an approval needs an id, a run, a call key and a tool")
	case a.Status != "" && a.Status != ApprovalPending:
		return fmt.Errorf("a new approval is pending, not %q", a.Status)
	case a.ExpiresAt.IsZero():
		return errors.New("an approval needs an expiry")
	}
	return CheckScope(a.Scope)
}

// CheckApprovalDecision checks a decision ResolveApproval is given.
func CheckApprovalDecision(d ApprovalDecision) error {
	if d.Status != ApprovalApproved && d.Status != ApprovalDenied && d.Status != ApprovalExpired {
		return fmt.Errorf("a decision is approved, denied or expired, not %q", d.Status)
	}
	return nil
}

// DecideApproval is the decision ResolveApproval stores for a pending
// approval at now: d, or an expiry when its time ran out (expired then true).
func DecideApproval(a Approval, d ApprovalDecision, now time.Time) (out ApprovalDecision, expired bool) {
	if d.Status != ApprovalExpired && !now.Before(a.ExpiresAt) {
		return ApprovalDecision{Status: ApprovalExpired, By: "system", Reason: "expired"}, true
	}
	if d.Status == ApprovalExpired {
		if d.By == "" {
			d.By = "system"
		}
		if d.Reason == "" {
			d.Reason = "expired"
		}
	}
	return d, false
}

// ApprovalResolvedEvent is the approval.resolved event of a decided approval.
func ApprovalResolvedEvent(a Approval, ts time.Time) Event {
	payload, _ := json.Marshal(map[string]any{
		"approval_id": a.ID, "call_id": a.CallID, "name": a.Tool, "status": a.Status,
		"decided_by": a.DecidedBy, "reason": a.DecisionReason,
	})
	return Event{Scope: a.Scope, RunID: a.RunID, AgentID: a.AgentID, Type: "approval.resolved", TS: ts, Payload: payload}
}

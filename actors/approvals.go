package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/openintern/openintern/store"
)

// ErrNoApprovals: the runtime keeps no approvals (its store does not).
var ErrNoApprovals = errors.New("actors: this daemon keeps no approvals")

// ResolveApproval decides a pending approval, publishes approval.resolved
// and wakes the agent, whose run, claimable again, resumes at the call: it
// runs (approved) or the model is told it was denied. Errors are the
// store's: ErrNotFound, ErrConflict when it is not pending (with the
// approval as it is), store.ErrApprovalExpired when its time ran out (it is
// expired now and its run resumed all the same).
func (r *Runtime) ResolveApproval(ctx context.Context, scope store.Scope, id string, d store.ApprovalDecision) (store.Approval, error) {
	if r.approvals == nil {
		return store.Approval{}, ErrNoApprovals
	}
	a, evs, err := r.approvals.ResolveApproval(ctx, scope, id, d)
	if len(evs) > 0 {
		_, _ = r.rec.Stored(evs, nil)
		r.Wake(scope, a.AgentID)
	}
	if err != nil {
		return a, fmt.Errorf("actors: resolve approval: %w", err)
	}
	return a, nil
}

// sweepApprovals expires the approvals whose time ran out, every
// ApprovalSweep, until the runtime stops, so their runs go on ("denied:
// expired") without anyone having to look at them.
func (r *Runtime) sweepApprovals() {
	tick := time.NewTicker(r.cfg.ApprovalSweep)
	defer tick.Stop()
	for {
		r.expireDue()
		select {
		case <-r.lifetime.Done():
			return
		case <-tick.C:
		}
	}
}

// expireDue expires the approvals due now, a batch at a time.
func (r *Runtime) expireDue() {
	const batch = 100
	for r.lifetime.Err() == nil {
		// The sweep's own reads and writes end with the runtime: Stop waits for it.
		ctx, cancel := context.WithTimeout(r.lifetime, r.cfg.StoreTimeout)
		due, err := r.approvals.DueApprovals(ctx, time.Now(), batch)
		cancel()
		if err != nil {
			r.logger.Warn("approvals: listing expired ones failed", "err", err)
			return
		}
		for _, a := range due {
			ctx, cancel := context.WithTimeout(r.lifetime, r.cfg.StoreTimeout)
			_, err := r.ResolveApproval(ctx, a.Scope, a.ID, store.ApprovalDecision{Status: store.ApprovalExpired, By: "system", Reason: "expired"})
			cancel()
			if err != nil && !errors.Is(err, store.ErrConflict) {
				r.logger.Warn("approvals: expiring failed", "approval_id", a.ID, "err", err)
				return
			}
		}
		if len(due) < batch {
			return
		}
	}
}

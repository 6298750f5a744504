package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/store"
)

// Several daemons (nodes) may share one store. With Config.Leases set, an
// agent's actor works only while this node holds the agent's lease, and a
// group's actor orchestrates only while it holds the group's; every write of
// their work carries the lease (store.WithFence), so a node that lost it
// cannot store a stale step. Wakes, cancels, pauses, resumes and group
// notices go through the Dispatcher, which delivers them to the node that
// owns the agent or group (or picks one). Without leases every Control is
// handled here and nothing is fenced: a single daemon, as before.

var (
	// errLeaseLost cancels a worker whose lease another node took: its run is
	// left running from its last checkpoint, for the new owner.
	errLeaseLost = errors.New("lease lost to another node")
	// errDraining refuses a lease while the node drains.
	errDraining = errors.New("node draining")
)

// leaseHold is a lease this node holds, as the renewal loop tracks it.
type leaseHold struct {
	lease store.Lease
	since time.Time // when it was taken: a renewal that began earlier cannot list it
	// renewed is when the latest renewal that kept it began (or since): the
	// lease is known live until renewed+TTL.
	renewed time.Time
	// lost tells the holder it no longer has the lease; called at most once.
	lost func(store.Lease)
}

// leases is the registry of the leases this node holds.
type leases struct {
	mu   sync.Mutex
	held map[store.LeaseRef]*leaseHold
}

func (ls *leases) put(l store.Lease, lost func(store.Lease)) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.held == nil {
		ls.held = make(map[store.LeaseRef]*leaseHold)
	}
	now := time.Now()
	ls.held[l.LeaseRef] = &leaseHold{lease: l, since: now, renewed: now, lost: lost}
}

// drop forgets l if it is still the one held; it reports whether it was.
func (ls *leases) drop(l store.Lease) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	h, ok := ls.held[l.LeaseRef]
	if !ok || h.lease.Epoch != l.Epoch {
		return false
	}
	delete(ls.held, l.LeaseRef)
	return true
}

func (ls *leases) has(ref store.LeaseRef) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	_, ok := ls.held[ref]
	return ok
}

func (ls *leases) count() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.held)
}

func (ls *leases) all() []store.Lease {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	out := make([]store.Lease, 0, len(ls.held))
	for _, h := range ls.held {
		out = append(out, h.lease)
	}
	return out
}

// leased says whether this runtime shares its store with other nodes.
func (r *Runtime) leased() bool { return r.cfg.Leases != nil }

// acquireLease takes ref for this node and registers it; lost is called (on
// the renewal loop's goroutine) when a renewal finds it gone. It fails with
// errDraining while the node drains, and with an error wrapping
// store.ErrLeaseHeld when another node holds it.
func (r *Runtime) acquireLease(ctx context.Context, ref store.LeaseRef, lost func(store.Lease)) (store.Lease, error) {
	if r.draining.Load() {
		return store.Lease{}, errDraining
	}
	l, err := r.cfg.Leases.AcquireLease(ctx, ref, r.cfg.NodeID, r.cfg.LeaseTTL)
	if err != nil {
		return l, fmt.Errorf("actors: lease %s %s: %w", ref.Kind, ref.Key, err)
	}
	if l.LeaseRef == (store.LeaseRef{}) {
		l.LeaseRef = ref
	}
	r.leases.put(l, lost)
	return l, nil
}

// releaseLease gives l back (when it is still current) so another node can
// take the work at once rather than after its expiry.
func (r *Runtime) releaseLease(l store.Lease) {
	r.leases.drop(l)
	ctx, cancel := r.storeCtx()
	defer cancel()
	if err := r.cfg.Leases.ReleaseLease(ctx, l); err != nil {
		r.logger.Warn("lease not released; it expires by itself", "kind", l.Kind, "key", l.Key, "err", err)
	}
}

// releaseAll gives back every lease still held (after the workers ended).
func (r *Runtime) releaseAll(ctx context.Context) {
	if !r.leased() {
		return
	}
	for _, l := range r.leases.all() {
		r.leases.drop(l)
		if err := r.cfg.Leases.ReleaseLease(ctx, l); err != nil {
			r.logger.Warn("lease not released; it expires by itself", "kind", l.Kind, "key", l.Key, "err", err)
		}
	}
}

// renewLeases keeps this node's leases and its heartbeat alive every
// LeaseTTL/3 until the runtime stops.
func (r *Runtime) renewLeases() {
	tick := time.NewTicker(max(r.cfg.LeaseTTL/3, time.Millisecond))
	defer tick.Stop()
	r.renewOnce(r.lifetime)
	for {
		select {
		case <-r.lifetime.Done():
			return
		case <-tick.C:
			r.renewOnce(r.lifetime)
		}
	}
}

// renewOnce renews the leases, tells the holders of those that another node
// took, and records the node's heartbeat.
func (r *Runtime) renewOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
	defer cancel()
	began := time.Now()
	renewed, err := r.cfg.Leases.RenewLeases(ctx, r.cfg.NodeID, r.cfg.LeaseTTL)
	if err != nil {
		// The store fences whatever this node writes once a lease expires,
		// so a failed renewal needs no more than a log here.
		if ctx.Err() == nil {
			r.logger.Warn("leases not renewed", "node", r.cfg.NodeID, "err", err)
		}
	} else {
		live := make(map[store.LeaseRef]int64, len(renewed))
		for _, l := range renewed {
			live[l.LeaseRef] = l.Epoch
		}
		var lost []*leaseHold
		r.leases.mu.Lock()
		for ref, h := range r.leases.held {
			epoch, ok := live[ref]
			switch {
			case ok && epoch == h.lease.Epoch:
				h.renewed = began
			case h.since.Before(began):
				lost = append(lost, h)
				delete(r.leases.held, ref)
			}
		}
		r.leases.mu.Unlock()
		for _, h := range lost {
			r.logger.Info("lease lost to another node", "kind", h.lease.Kind, "key", h.lease.Key, "epoch", h.lease.Epoch)
			h.lost(h.lease)
		}
	}
	n := store.Node{ID: r.cfg.NodeID, Addr: r.cfg.NodeAddr, Version: r.cfg.Version, StartedAt: r.started, Draining: r.Draining(), Load: r.Load()}
	if err := r.cfg.Leases.HeartbeatNode(ctx, n, r.cfg.LeaseTTL); err != nil && ctx.Err() == nil {
		r.logger.Warn("node heartbeat not stored", "node", r.cfg.NodeID, "err", err)
	}
}

// confirmLease returns nil when l is still this node's: at once when a
// renewal kept it within the last LeaseTTL/2 (renewals run every LeaseTTL/3),
// else by reading it from the store, as after the process was frozen or its
// renewals stalled. It returns store.ErrFenced when l is lost.
func (r *Runtime) confirmLease(ctx context.Context, l store.Lease) error {
	r.leases.mu.Lock()
	h, ok := r.leases.held[l.LeaseRef]
	held := ok && h.lease.Epoch == l.Epoch
	fresh := held && time.Since(h.renewed) < r.cfg.LeaseTTL/2
	r.leases.mu.Unlock()
	switch {
	case fresh:
		return nil
	case !held:
		return store.ErrFenced // a renewal found it lost, or the holder let it go
	}
	cur, err := r.cfg.Leases.GetLease(ctx, l.LeaseRef)
	if err != nil {
		return fmt.Errorf("actors: read lease %s %s: %w", l.Kind, l.Key, err)
	}
	if !cur.Live || cur.NodeID != l.NodeID || cur.Epoch != l.Epoch {
		return store.ErrFenced
	}
	return nil
}

// sweepUnowned looks for work nobody owns every SweepInterval until the
// runtime stops.
func (r *Runtime) sweepUnowned() {
	tick := time.NewTicker(r.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.lifetime.Done():
			return
		case <-tick.C:
			if r.draining.Load() {
				continue
			}
			ctx, cancel := context.WithTimeout(r.lifetime, r.cfg.StoreTimeout)
			if _, _, err := r.dispatchUnowned(ctx); err != nil && ctx.Err() == nil {
				r.logger.Warn("sweep for unowned work failed", "err", err)
			}
			cancel()
		}
	}
}

// dispatchUnowned dispatches a wake for each agent, and a notice for each
// group run, that has work and no live lease of another node (but this
// node's own, which need none), so routing can spread them.
func (r *Runtime) dispatchUnowned(ctx context.Context) (agents, groupRuns int, err error) {
	refs, runs, err := r.cfg.Leases.ListUnownedWork(ctx, r.cfg.NodeID)
	if err != nil {
		return 0, 0, fmt.Errorf("actors: unowned work: %w", err)
	}
	for _, ref := range refs {
		if r.leases.has(store.LeaseRef{Scope: ref.Scope, Kind: store.LeaseAgent, Key: ref.AgentID}) {
			continue
		}
		r.Wake(ref.Scope, ref.AgentID)
		agents++
	}
	for _, run := range runs {
		if r.leases.has(store.LeaseRef{Scope: run.Scope, Kind: store.LeaseGroup, Key: run.GroupID}) {
			continue
		}
		r.groupRunChanged(run.Scope, run.GroupID, run.ID)
		groupRuns++
	}
	return agents, groupRuns, nil
}

// SetDispatcher makes d deliver this runtime's Controls (call before Start).
// The default handles every Control here (events.LocalDispatcher with
// HandleControl). The runtime does not Close d: its owner does, after Stop.
func (r *Runtime) SetDispatcher(d events.Dispatcher) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dispatcher = d
}

// dispatch sends c through the dispatcher. Like the sends it replaces, it
// reports nothing: a Control that could not be delivered is handled here by
// the dispatcher itself, and the sweep finds whatever was missed.
func (r *Runtime) dispatch(c events.Control) {
	r.mu.RLock()
	d := r.dispatcher
	r.mu.RUnlock()
	c.From = r.cfg.NodeID
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.StoreTimeout)
	defer cancel()
	if err := d.Dispatch(ctx, c); err != nil {
		r.logger.Warn("control not delivered to its node; handled here", "kind", c.Kind, "agent", c.AgentID, "group", c.GroupID, "run", c.RunID, "err", err)
	}
}

// HandleControl acts on c on this node: what Wake, CancelRun, Pause,
// Resume and the group-run notices do locally. It never blocks.
func (r *Runtime) HandleControl(c events.Control) {
	key := agentKey{c.Scope, c.AgentID}
	switch c.Kind {
	case events.ControlWake:
		r.send(&wakeAgent{key: key})
	case events.ControlCancel:
		r.send(&forwardToAgent{key: key, msg: &cancelRun{runID: c.RunID}})
	case events.ControlPause:
		r.send(&forwardToAgent{key: key, msg: &pauseAgent{}})
	case events.ControlResume:
		r.send(&forwardToAgent{key: key, msg: &resumeAgent{}})
	case events.ControlGroup:
		r.send(&groupRunChanged{key: groupKey{c.Scope, c.GroupID}, runID: c.RunID})
	default:
		r.logger.Warn("unknown control ignored", "kind", c.Kind, "from", c.From)
	}
}

// changeStateRemote pauses or resumes an agent this node does not own. The
// answer cannot come from the owner's actor (there is no reply across nodes),
// so the new state is written to the store first and the owner, if any, is
// told after: an actor activated anywhere reads it from there, and the owner
// stops (or goes on) at its next step boundary. The owner records its own
// transition as well, so the agent may show two agent.state_changed events
// for one request.
func (r *Runtime) changeStateRemote(ctx context.Context, scope store.Scope, agentID string, pause bool) (string, error) {
	ag, err := r.store.GetAgent(ctx, scope, agentID)
	if err != nil {
		return "", fmt.Errorf("actors: change state: %w", err)
	}
	kind, next, reason := events.ControlPause, store.AgentPaused, "paused by request"
	if !pause {
		kind, next, reason = events.ControlResume, store.AgentIdle, "resumed by request"
	}
	switch {
	case ag.State == store.AgentTerminated:
		return ag.State, nil
	case pause && ag.State != store.AgentPaused, !pause && ag.State == store.AgentPaused:
		ev := stateEvent(agentID, ag.State, next, reason, "node", r.cfg.NodeID)
		ev.Scope = scope
		if _, err := r.rec.StoredOne(r.store.SetAgentState(ctx, scope, agentID, next, ev)); err != nil {
			return "", fmt.Errorf("actors: change state: %w", err)
		}
	default:
		next = ag.State
	}
	r.dispatch(events.Control{Kind: kind, Scope: scope, AgentID: agentID})
	return next, nil
}

// Draining reports whether Drain has begun.
func (r *Runtime) Draining() bool { return r.draining.Load() }

// Load is how many agents and groups are active on this node now.
func (r *Runtime) Load() int { return int(r.load.Load()) }

// Drain hands this node's work back: it stops taking leases, stops its
// agents and groups at their next step boundary, releases their leases and
// then dispatches a wake for the work left, so another node takes it at
// once. It returns when every agent and group has passivated, or with ctx's
// error when ctx ends first. Draining is true from its start; Stop still
// follows it.
func (r *Runtime) Drain(ctx context.Context) error {
	r.draining.Store(true)
	if !r.send(&drainAll{}) {
		return nil
	}
	for r.Load() > 0 || r.leases.count() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("actors: drain: %d agents and groups still active: %w", r.Load(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !r.leased() {
		return nil
	}
	agents, groupRuns, err := r.dispatchUnowned(ctx)
	if err != nil {
		return fmt.Errorf("actors: drain: %w", err)
	}
	r.logger.Info("drained: work handed to other nodes", "node", r.cfg.NodeID, "agents", agents, "group_runs", groupRuns)
	return nil
}

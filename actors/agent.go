package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/openintern/openintern/store"
)

// agentActor owns one agent's state machine. Its worker goroutine runs one
// claim-and-execute cycle at a time and reports back with turnDone.
type agentActor struct {
	rt   *Runtime
	key  agentKey
	idle *idleTimer // asks the supervisor to passivate the idle actor

	state      string // idle, running, paused, error, terminated
	deleted    bool   // the agent's row is gone: terminate once the inbox is drained
	wakesSeen  uint64
	moreMail   bool         // a wake arrived while busy: claim again before going idle
	mailHint   bool         // a wake arrived since the last cycle started: claim without asking HasWork first
	agent      *store.Agent // the agent's row as the last turn read it; nil after a change
	agentGen   uint64       // bumped by agentChanged, so a turn in flight cannot re-cache an old row
	wantSlot   bool         // asked the supervisor for a slot, not granted yet
	holdsSlot  bool
	worker     *worker
	cancelled  map[string]bool // runs asked to cancel before the worker reported them
	retryTimer *time.Timer
	backoff    time.Duration
	idleTimer  *time.Timer
	idleGen    uint64 // invalidates a pending goIdle when work arrives first

	// lifetime ends when the actor stops; the worker's context derives from it.
	lifetime context.Context
	stop     context.CancelCauseFunc

	// lease is the agent's lease while this node holds it (Config.Leases
	// set); the worker's writes are fenced by it.
	lease *store.Lease
	// draining: the node drains; the actor hands its work back.
	draining bool
	self     *actor.PID
	root     *actor.RootContext
}

// worker is the goroutine running the current cycle.
type worker struct {
	runID  string
	cancel context.CancelCauseFunc
	pause  atomic.Bool // stop at the next step boundary
}

func newAgentActor(rt *Runtime, key agentKey) *agentActor {
	return &agentActor{rt: rt, key: key, state: store.AgentIdle, cancelled: make(map[string]bool)}
}

func (a *agentActor) Receive(ctx actor.Context) {
	a.idle.seen(ctx.Message())
	switch ctx.Message().(type) {
	case *cancelRun, *pauseAgent, *resumeAgent:
		// Counted like wakes, they keep the supervisor from passivating a
		// draining actor that asked before them: it asks again after.
		defer func() {
			if a.draining && a.worker == nil && !a.wantSlot && a.lifetime.Err() == nil {
				a.passivate(ctx)
			}
		}()
	}
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.lifetime, a.stop = context.WithCancelCause(a.rt.lifetime)
		a.self, a.root = ctx.Self(), ctx.ActorSystem().Root
		a.onStarted(ctx)
	case *actor.Stopping:
		a.idle.stop()
		a.onStopping(ctx)
	case *idleTick:
		// due arms the timer again, or an actor that was busy (or declined)
		// when it fired would never passivate.
		if !a.idle.due(msg) {
			return
		}
		if a.worker == nil && !a.wantSlot && (a.state == store.AgentIdle || a.state == store.AgentPaused) {
			ctx.Request(ctx.Parent(), &idleNotice{key: a.key, wakesSeen: a.wakesSeen})
		}
	case *agentWake:
		a.wakesSeen++
		a.mailHint = true
		a.onWake(ctx)
	case *agentChanged:
		a.agent = nil
		a.agentGen++
		a.checkDeleted(ctx)
	case *agentDeleted:
		if a.state == store.AgentTerminated {
			return
		}
		// Work left in the inbox is drained first: each run fails as its
		// agent is not found, then the empty inbox ends the actor.
		a.deleted = true
		switch {
		case a.worker != nil, a.wantSlot:
		case a.state == store.AgentPaused:
			a.terminate(ctx)
		default:
			a.onWake(ctx)
		}
	case *retryAfterError:
		a.retryTimer = nil
		if a.state == store.AgentError {
			a.onWake(ctx)
		}
	case *slotGranted:
		a.wantSlot = false
		a.holdsSlot = true
		switch {
		case a.state == store.AgentPaused || a.lifetime.Err() != nil:
			a.releaseSlot(ctx)
			return
		case a.draining || a.rt.draining.Load():
			a.releaseSlot(ctx)
			a.handBack(ctx)
			return
		case a.rt.leased() && a.lease == nil:
			// Lost while it waited for the slot.
			a.releaseSlot(ctx)
			a.passivate(ctx)
			return
		}
		a.startWorker(ctx)
	case *runClaimed:
		if a.worker != nil {
			a.worker.runID = msg.runID
			if a.cancelled[msg.runID] {
				a.worker.cancel(errRunCancelled)
			}
		}
		clear(a.cancelled)
	case *turnDone:
		a.onTurnDone(ctx, msg.outcome)
	case *goIdle:
		if msg.gen == a.idleGen && a.worker == nil && !a.wantSlot && a.state == store.AgentRunning {
			a.setState(store.AgentIdle, "inbox empty")
		}
	case *cancelRun:
		a.wakesSeen++
		if a.worker != nil && a.worker.runID == msg.runID {
			a.worker.cancel(errRunCancelled)
		} else if a.worker != nil {
			a.cancelled[msg.runID] = true
		}
	case *pauseAgent:
		a.wakesSeen++
		if a.state != store.AgentPaused {
			if a.worker != nil {
				a.worker.pause.Store(true)
			}
			a.setState(store.AgentPaused, "paused by request")
		}
		a.respond(ctx, &stateReply{state: a.state})
	case *resumeAgent:
		a.wakesSeen++
		if a.state == store.AgentPaused {
			next := store.AgentIdle
			if a.worker != nil {
				a.worker.pause.Store(a.draining)
				next = store.AgentRunning
			}
			a.setState(next, "resumed by request")
			if a.worker == nil {
				a.onWake(ctx)
			}
		}
		a.respond(ctx, &stateReply{state: a.state})
	case *drainNow:
		a.handBack(ctx)
	case *leaseLost:
		if a.lease == nil || a.lease.Epoch != msg.lease.Epoch {
			return // an older lease's news
		}
		a.rt.leases.drop(*a.lease)
		a.lease = nil
		if a.worker != nil {
			// Stop at once: the run stays running from its last checkpoint,
			// for the node that owns the agent now.
			a.worker.cancel(errLeaseLost)
			return
		}
		a.passivate(ctx)
	}
}

// respond answers a request; a Control delivered from another node has no
// one waiting for the answer.
func (a *agentActor) respond(ctx actor.Context, reply any) {
	if ctx.Sender() != nil {
		ctx.Respond(reply)
	}
}

// takeLease makes sure the actor holds the agent's lease before it works.
// false: it must not work now, because another node owns the agent or this
// node drains (the actor passivates), or the store failed (it retries after
// a backoff).
func (a *agentActor) takeLease(ctx actor.Context) bool {
	if a.draining || a.rt.draining.Load() {
		a.handBack(ctx)
		return false
	}
	if !a.rt.leased() || a.lease != nil {
		return true
	}
	sctx, cancel := a.rt.storeCtx()
	defer cancel()
	self, root := a.self, a.root
	ref := store.LeaseRef{Scope: a.key.scope, Kind: store.LeaseAgent, Key: a.key.agentID}
	l, err := a.rt.acquireLease(sctx, ref, func(l store.Lease) { root.Send(self, &leaseLost{lease: l}) })
	switch {
	case err == nil:
		a.lease = &l
		return true
	case errors.Is(err, store.ErrLeaseHeld), errors.Is(err, errDraining):
		a.passivate(ctx)
		return false
	default:
		a.rt.logger.Warn("agent lease not taken; will retry", "agent", a.key.agentID, "org", a.key.scope.OrgID, "err", err)
		a.enterError(ctx, err)
		return false
	}
}

// dropLease forgets the agent's lease, giving it back to the store when
// release is set (it is still current: the node is done with the work).
func (a *agentActor) dropLease(release bool) {
	if a.lease == nil {
		return
	}
	l := *a.lease
	a.lease = nil
	if release {
		a.rt.releaseLease(l)
	} else {
		a.rt.leases.drop(l)
	}
}

// passivate asks the supervisor to stop the actor; a wake in flight keeps it
// (the wake is then handled, and the actor asks again).
func (a *agentActor) passivate(ctx actor.Context) {
	ctx.Request(ctx.Parent(), &idleNotice{key: a.key, wakesSeen: a.wakesSeen})
}

// handBack gives the agent's work back while the node drains: a running
// worker stops at its next step boundary (then turnDone hands back), an idle
// actor records idle, releases the lease and passivates, so another node can
// take the agent at once.
func (a *agentActor) handBack(ctx actor.Context) {
	a.draining = true
	if a.worker != nil {
		a.worker.pause.Store(true)
		return
	}
	if a.retryTimer != nil {
		a.retryTimer.Stop()
		a.retryTimer = nil
	}
	if a.state == store.AgentRunning || a.state == store.AgentError {
		a.setState(store.AgentIdle, "handed back: node draining")
	}
	a.dropLease(true)
	a.passivate(ctx)
}

func (a *agentActor) onStarted(ctx actor.Context) {
	a.idle = newIdleTimer(a.rt.cfg.IdleTimeout, a.root, a.self)
	sctx, cancel := a.rt.storeCtx()
	defer cancel()
	ag, err := a.rt.store.GetAgent(sctx, a.key.scope, a.key.agentID)
	switch {
	case err == nil && ag.State == store.AgentPaused:
		a.state = store.AgentPaused
		if a.rt.draining.Load() {
			a.draining = true
			a.passivate(ctx)
		}
		return
	case err == nil && ag.State != store.AgentIdle:
		// Running or error in the store means the previous activation ended
		// abruptly (or, with leases, that another node works for the agent:
		// then the lease is not taken and the state is not this node's to
		// write); the state becomes idle, and the wake below resumes its work.
		if !a.takeLease(ctx) {
			return
		}
		a.setState(store.AgentIdle, "reactivated")
	}
	// Look at the inbox once on activation: recovery and passivation both rely on it.
	a.onWake(ctx)
}

func (a *agentActor) onStopping(ctx actor.Context) {
	if a.retryTimer != nil {
		a.retryTimer.Stop()
	}
	if a.idleTimer != nil {
		a.idleTimer.Stop()
	}
	// A worker still running stops at its step boundary, leaving its run to
	// resume from the last checkpoint; Runtime.Stop waits for it, so the actor
	// need not (blocking here would hold up every other actor's shutdown).
	a.stop(errShutdown)
	if a.state == store.AgentRunning && a.worker == nil {
		a.setState(store.AgentIdle, "stopped")
	}
	a.releaseSlot(ctx)
	if a.worker == nil {
		// A worker still running keeps the lease until it ends: Runtime.Stop
		// releases it then.
		a.dropLease(true)
	}
}

func (a *agentActor) onWake(ctx actor.Context) {
	switch {
	case a.state == store.AgentPaused, a.state == store.AgentTerminated, a.lifetime.Err() != nil:
		return
	case a.worker != nil, a.wantSlot:
		a.moreMail = true
		return
	case a.state == store.AgentError && a.retryTimer != nil:
		return // the retry will look at the inbox
	}
	if !a.takeLease(ctx) {
		return
	}
	a.wantSlot = true
	ctx.Request(ctx.Parent(), &acquireSlot{})
}

func (a *agentActor) releaseSlot(ctx actor.Context) {
	if a.holdsSlot {
		a.holdsSlot = false
		ctx.Request(ctx.Parent(), &releaseSlot{})
	}
}

// scheduleIdle goes idle once the inbox has stayed empty for idleGrace. An
// agent fed message after message (a chat, a pipeline) then stays running
// instead of flapping idle/running on every turn, which would cost two state
// writes and two events per turn.
func (a *agentActor) scheduleIdle(ctx actor.Context) {
	a.idleGen++
	gen := a.idleGen
	self := ctx.Self()
	root := ctx.ActorSystem().Root
	if a.idleTimer != nil {
		a.idleTimer.Stop()
	}
	a.idleTimer = time.AfterFunc(idleGrace, func() { root.Send(self, &goIdle{gen: gen}) })
}

func (a *agentActor) startWorker(ctx actor.Context) {
	a.idleGen++ // work arrived: a pending goIdle is stale
	wctx, cancel := context.WithCancelCause(a.lifetime)
	fctx := context.Context(wctx)
	if a.lease != nil {
		fctx = store.WithFence(wctx, *a.lease) // every write of the turn is made under the lease
	}
	w := &worker{cancel: cancel}
	a.worker = w
	a.moreMail = false
	if a.state != store.AgentRunning {
		a.setState(store.AgentRunning, "has work")
	}
	self := ctx.Self()
	root := ctx.ActorSystem().Root
	hint, cached, gen := a.mailHint, a.agent, a.agentGen
	a.mailHint = false
	a.rt.goWorker(func() {
		defer cancel(nil)
		var out turnOutcome
		defer func() {
			// A panic in a provider or the loop must not take the daemon down:
			// the agent goes to error and retries its run from the checkpoint.
			if p := recover(); p != nil {
				out = turnOutcome{err: fmt.Errorf("panic in agent worker: %v", p)}
			}
			root.Send(self, &turnDone{outcome: out})
		}()
		out = a.rt.runCycle(fctx, a.key, w, cycleHints{mail: hint, agent: cached, agentGen: gen}, func(runID string) { root.Send(self, &runClaimed{runID: runID}) })
	})
}

func (a *agentActor) onTurnDone(ctx actor.Context, out turnOutcome) {
	a.worker = nil
	if out.agent != nil && out.agentGen == a.agentGen {
		a.agent = out.agent
	}
	a.releaseSlot(ctx)
	if a.lifetime.Err() != nil {
		return
	}
	if out.fenced || (a.rt.leased() && a.lease == nil) {
		// Another node owns the agent now: its run is not failed and the
		// agent not put in error; the owner goes on from the checkpoint.
		a.rt.logger.Info("agent work stopped: another node owns it", "agent", a.key.agentID, "org", a.key.scope.OrgID, "run", out.runID)
		a.dropLease(false)
		if a.state != store.AgentPaused {
			a.state = store.AgentIdle // in memory only: the store's state is the owner's
		}
		a.passivate(ctx)
		return
	}
	switch {
	case a.deleted && out.noWork && !a.moreMail:
		a.terminate(ctx)
		return
	case a.draining || a.rt.draining.Load():
		a.handBack(ctx)
		return
	case out.err != nil:
		a.rt.logger.Error("agent turn failed; will retry", "agent", a.key.agentID, "org", a.key.scope.OrgID, "run", out.runID, "err", out.err)
		a.enterError(ctx, out.err)
		return
	case out.llmFailure != nil && out.llmFailure.Code != "llm_bad_request":
		// The run has failed; the provider is likely failing the next one too,
		// so the agent waits before it claims more (a bad request is the run's
		// own fault and says nothing about the next).
		a.rt.logger.Warn("agent run failed on the LLM; backing off", "agent", a.key.agentID, "org", a.key.scope.OrgID, "run", out.runID, "code", out.llmFailure.Code)
		a.enterError(ctx, fmt.Errorf("%s: %s", out.llmFailure.Code, out.llmFailure.Message))
		return
	case a.state == store.AgentPaused:
		return
	case out.noWork && !a.moreMail:
		// An empty inbox is no success: the backoff stays until a run succeeds.
		if a.state != store.AgentIdle {
			a.scheduleIdle(ctx)
		}
		return
	}
	if out.runID != "" {
		a.backoff = 0 // a run went through: the outage, if any, is over
	}
	if out.alone && !out.suspended && !a.moreMail && !a.deleted {
		// The inbox held only this run's message, and no mail woke the agent
		// since: a claim would find nothing (it would cost a round trip).
		if a.state != store.AgentIdle {
			a.scheduleIdle(ctx)
		}
		return
	}
	// Release and re-acquire the slot between runs so agents waiting for one
	// get their turn in order.
	a.wantSlot = true
	ctx.Request(ctx.Parent(), &acquireSlot{})
}

func (a *agentActor) enterError(ctx actor.Context, cause error) {
	if a.backoff == 0 {
		a.backoff = a.rt.cfg.ErrorBackoff
	} else {
		a.backoff = min(a.backoff*2, a.rt.cfg.ErrorBackoffMax)
	}
	a.setState(store.AgentError, cause.Error(), "retry_in_ms", a.backoff.Milliseconds())
	if a.retryTimer != nil {
		// Left from an error the agent was resumed out of: only the latest counts.
		a.retryTimer.Stop()
	}
	self := ctx.Self()
	root := ctx.ActorSystem().Root
	a.retryTimer = time.AfterFunc(a.backoff, func() { root.Send(self, &retryAfterError{}) })
}

// checkDeleted looks, off the actor, whether the agent's row still exists, and
// tells the actor when it is gone.
func (a *agentActor) checkDeleted(ctx actor.Context) {
	self := ctx.Self()
	root := ctx.ActorSystem().Root
	a.rt.goWorker(func() {
		sctx, cancel := a.rt.storeCtx()
		defer cancel()
		if _, err := a.rt.store.GetAgent(sctx, a.key.scope, a.key.agentID); errors.Is(err, store.ErrNotFound) {
			root.Send(self, &agentDeleted{})
		}
	})
}

// terminate ends a deleted agent's actor: the transition to terminated is
// recorded (as an event only: the row is gone) and the supervisor stops it.
func (a *agentActor) terminate(ctx actor.Context) {
	if a.retryTimer != nil {
		a.retryTimer.Stop()
		a.retryTimer = nil
	}
	if a.idleTimer != nil {
		a.idleTimer.Stop()
	}
	prev := a.state
	a.state = store.AgentTerminated
	ev := a.stateEvent(prev, store.AgentTerminated, "agent deleted")
	ev.Scope = a.key.scope
	sctx, cancel := a.rt.storeCtx()
	defer cancel()
	if _, err := a.rt.rec.Stored(a.rt.store.AppendEvents(sctx, []store.Event{ev})); err != nil {
		a.rt.logger.Warn("agent state not stored", "agent", a.key.agentID, "state", store.AgentTerminated, "err", err)
	}
	ctx.Request(ctx.Parent(), &agentTerminated{key: a.key, wakesSeen: a.wakesSeen})
}

func (a *agentActor) stateEvent(prev, next, reason string, extra ...any) store.Event {
	return stateEvent(a.key.agentID, prev, next, reason, extra...)
}

// stateEvent is an agent.state_changed event (extra: more payload fields,
// as key, value pairs).
func stateEvent(agentID, prev, next, reason string, extra ...any) store.Event {
	fields := map[string]any{"from": prev, "to": next, "reason": reason}
	for i := 0; i+1 < len(extra); i += 2 {
		fields[extra[i].(string)] = extra[i+1]
	}
	payload, _ := json.Marshal(fields)
	return store.Event{AgentID: agentID, Type: "agent.state_changed", TS: time.Now().UTC(), Payload: payload}
}

// setState records a transition and its agent.state_changed event (extra:
// more payload fields, as key, value pairs). A failed write is logged, not
// fatal: the in-memory state still governs the actor, and the store is
// corrected on the next transition or activation. With leases the state is
// written only under the agent's lease: without it, another node may own the
// agent and its state.
func (a *agentActor) setState(next, reason string, extra ...any) {
	prev := a.state
	a.state = next
	if a.rt.leased() && a.lease == nil {
		return
	}
	ev := a.stateEvent(prev, next, reason, extra...)
	sctx, cancel := a.rt.storeCtx()
	defer cancel()
	if a.lease != nil {
		sctx = store.WithFence(sctx, *a.lease)
	}
	_, err := a.rt.rec.StoredOne(a.rt.store.SetAgentState(sctx, a.key.scope, a.key.agentID, next, ev))
	if errors.Is(err, store.ErrFenced) && a.lease != nil {
		a.root.Send(a.self, &leaseLost{lease: *a.lease})
		return
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.rt.logger.Warn("agent state not stored", "agent", a.key.agentID, "state", next, "err", err)
	}
}

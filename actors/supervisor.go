package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/openintern/openintern/store"
)

// supervisor owns the pool of activated agent actors: it activates them on
// demand, passivates idle ones, and hands out the run slots that cap how many
// agents run at once. Slots are shared fairly between scopes (tenants): each
// scope queues its agents first come first served, and a freed slot goes to
// the next scope in turn, so one scope flooding its agents delays another's by
// at most one turn per waiting scope, not by its whole backlog.
type supervisor struct {
	rt *Runtime
	// newAgent makes an agent's actor (tests put a probe in its place).
	newAgent func(key agentKey) actor.Actor

	children  map[agentKey]*actor.PID
	keys      map[string]agentKey // pid.Id -> key, to clean up on Terminated
	wakesSent map[agentKey]uint64

	slotsInUse  int
	slotHolders map[string]store.Scope // pid.Id -> the scope its slot counts against
	scopeSlots  map[store.Scope]int    // slots held per scope, for MaxRunningPerScope
	queues      map[store.Scope][]*actor.PID
	// turns holds the scopes with waiters in the order they get their next
	// slot; a scope served goes to the back.
	turns      []store.Scope
	waitingSet map[string]store.Scope // pid.Id -> the scope whose queue holds it
	nWaiting   int

	groups     map[groupKey]*actor.PID
	groupKeys  map[string]groupKey // pid.Id -> key
	groupsSent map[groupKey]uint64
}

func newSupervisor(rt *Runtime) *supervisor {
	newAgent := rt.newAgent
	if newAgent == nil {
		newAgent = func(key agentKey) actor.Actor { return newAgentActor(rt, key) }
	}
	return &supervisor{
		newAgent:    newAgent,
		rt:          rt,
		children:    make(map[agentKey]*actor.PID),
		keys:        make(map[string]agentKey),
		wakesSent:   make(map[agentKey]uint64),
		slotHolders: make(map[string]store.Scope),
		scopeSlots:  make(map[store.Scope]int),
		queues:      make(map[store.Scope][]*actor.PID),
		waitingSet:  make(map[string]store.Scope),
		groups:      make(map[groupKey]*actor.PID),
		groupKeys:   make(map[string]groupKey),
		groupsSent:  make(map[groupKey]uint64),
	}
}

func (s *supervisor) Receive(ctx actor.Context) {
	defer func() { s.rt.load.Store(int64(len(s.children) + len(s.groups))) }()
	switch msg := ctx.Message().(type) {
	case *wakeAgent:
		pid := s.child(ctx, msg.key)
		s.wakesSent[msg.key]++
		ctx.Send(pid, &agentWake{})
	case *forwardToAgent:
		pid := s.child(ctx, msg.key)
		s.wakesSent[msg.key]++ // counted like a wake, so passivation never drops it
		if ctx.Sender() != nil {
			ctx.RequestWithCustomSender(pid, msg.msg, ctx.Sender())
		} else {
			ctx.Send(pid, msg.msg)
		}
	case *notifyAgent:
		if pid, ok := s.children[msg.key]; ok {
			ctx.Send(pid, msg.msg)
		}
	case *acquireSlot:
		s.acquire(ctx, ctx.Sender())
	case *releaseSlot:
		s.release(ctx, ctx.Sender())
	case *idleNotice:
		pid, ok := s.children[msg.key]
		// Stop only when no wake is in flight to it: every wake sent has been seen.
		if ok && ctx.Sender() != nil && pid.Id == ctx.Sender().Id && s.wakesSent[msg.key] == msg.wakesSeen {
			s.forget(msg.key)
			ctx.Stop(pid)
		}
	case *agentTerminated:
		pid, ok := s.children[msg.key]
		if !ok || ctx.Sender() == nil || pid.Id != ctx.Sender().Id {
			return
		}
		pending := s.wakesSent[msg.key] != msg.wakesSeen
		s.forget(msg.key)
		ctx.Stop(pid)
		if pending {
			// Mail arrived for the id after it was deleted (it may have been
			// created again): a fresh actor looks at the inbox on start.
			s.child(ctx, msg.key)
		}
	case *groupRunChanged:
		pid := s.group(ctx, msg.key)
		s.groupsSent[msg.key]++
		ctx.Send(pid, &reconcileGroupRun{runID: msg.runID})
	case *drainAll:
		for _, pid := range s.children {
			ctx.Send(pid, &drainNow{})
		}
		for _, pid := range s.groups {
			ctx.Send(pid, &drainNow{})
		}
	case *groupIdle:
		pid, ok := s.groups[msg.key]
		if ok && ctx.Sender() != nil && pid.Id == ctx.Sender().Id && s.groupsSent[msg.key] == msg.seen {
			delete(s.groups, msg.key)
			delete(s.groupsSent, msg.key)
			ctx.Stop(pid)
		}
	case *actor.Terminated:
		if key, ok := s.groupKeys[msg.Who.Id]; ok {
			if pid := s.groups[key]; pid != nil && pid.Id == msg.Who.Id {
				delete(s.groups, key)
				delete(s.groupsSent, key)
			}
			delete(s.groupKeys, msg.Who.Id)
			return
		}
		if key, ok := s.keys[msg.Who.Id]; ok {
			if pid := s.children[key]; pid != nil && pid.Id == msg.Who.Id {
				s.forget(key)
			}
			delete(s.keys, msg.Who.Id)
		}
		s.release(ctx, msg.Who)
		s.dropWaiting(msg.Who)
	case *actor.Stopped:
		close(s.rt.supervisorDone)
	case *statsRequest:
		ctx.Respond(Stats{ActiveAgents: len(s.children), RunningAgents: s.slotsInUse, WaitingAgents: s.nWaiting, WaitingScopes: len(s.turns), ActiveGroups: len(s.groups)})
	}
}

// child returns the agent's actor, activating it when it is passive.
func (s *supervisor) child(ctx actor.Context, key agentKey) *actor.PID {
	if pid, ok := s.children[key]; ok {
		return pid
	}
	props := actor.PropsFromProducer(func() actor.Actor { return s.newAgent(key) })
	pid := ctx.Spawn(props)
	ctx.Watch(pid)
	s.children[key] = pid
	s.keys[pid.Id] = key
	s.wakesSent[key] = 0
	return pid
}

// group returns the group's actor, activating it when it is passive.
func (s *supervisor) group(ctx actor.Context, key groupKey) *actor.PID {
	if pid, ok := s.groups[key]; ok {
		return pid
	}
	pid := ctx.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return newGroupActor(s.rt, key)
	}))
	ctx.Watch(pid)
	s.groups[key] = pid
	s.groupKeys[pid.Id] = key
	s.groupsSent[key] = 0
	return pid
}

func (s *supervisor) forget(key agentKey) {
	delete(s.children, key)
	delete(s.wakesSent, key)
}

func (s *supervisor) acquire(ctx actor.Context, pid *actor.PID) {
	if pid == nil {
		return
	}
	if _, ok := s.slotHolders[pid.Id]; ok {
		return
	}
	if _, ok := s.waitingSet[pid.Id]; ok {
		return
	}
	// An agent asks from its own actor, so its key is known; the zero scope
	// is only for a sender the supervisor did not spawn.
	scope := s.keys[pid.Id].scope
	q := s.queues[scope]
	if len(q) == 0 && s.hasSlotFor(scope) {
		s.grant(ctx, pid, scope)
		return
	}
	if len(q) == 0 {
		s.turns = append(s.turns, scope)
	}
	s.queues[scope] = append(q, pid)
	s.waitingSet[pid.Id] = scope
	s.nWaiting++
}

func (s *supervisor) release(ctx actor.Context, pid *actor.PID) {
	if pid == nil {
		return
	}
	scope, ok := s.slotHolders[pid.Id]
	if !ok {
		return
	}
	delete(s.slotHolders, pid.Id)
	s.slotsInUse--
	if s.scopeSlots[scope]--; s.scopeSlots[scope] == 0 {
		delete(s.scopeSlots, scope)
	}
	s.grantWaiting(ctx)
}

// hasSlotFor says whether an agent of scope may start now.
func (s *supervisor) hasSlotFor(scope store.Scope) bool {
	if s.slotsInUse >= s.rt.cfg.MaxRunning {
		return false
	}
	limit := s.rt.cfg.MaxRunningPerScope
	return limit <= 0 || s.scopeSlots[scope] < limit
}

func (s *supervisor) grant(ctx actor.Context, pid *actor.PID, scope store.Scope) {
	s.slotsInUse++
	s.scopeSlots[scope]++
	s.slotHolders[pid.Id] = scope
	ctx.Send(pid, &slotGranted{})
}

// grantWaiting hands free slots round-robin to the scopes with waiters, each
// to its longest-waiting agent. A scope at its own cap keeps its place in
// turn and its queue while the others are served.
func (s *supervisor) grantWaiting(ctx actor.Context) {
	for i := 0; i < len(s.turns) && s.slotsInUse < s.rt.cfg.MaxRunning; {
		scope := s.turns[i]
		if !s.hasSlotFor(scope) {
			i++
			continue
		}
		q := s.queues[scope]
		next := q[0]
		q[0] = nil
		q = q[1:]
		delete(s.waitingSet, next.Id)
		s.nWaiting--
		s.turns = append(s.turns[:i], s.turns[i+1:]...)
		if len(q) == 0 {
			delete(s.queues, scope)
		} else {
			s.queues[scope] = q
			s.turns = append(s.turns, scope)
		}
		s.grant(ctx, next, scope)
		// The scopes skipped (at their cap) stay first in turn; i is now the
		// scope that followed the one just served.
	}
}

func (s *supervisor) dropWaiting(pid *actor.PID) {
	scope, ok := s.waitingSet[pid.Id]
	if !ok {
		return
	}
	delete(s.waitingSet, pid.Id)
	s.nWaiting--
	q := s.queues[scope]
	for i, p := range q {
		if p.Id == pid.Id {
			q = append(q[:i], q[i+1:]...)
			break
		}
	}
	if len(q) > 0 {
		s.queues[scope] = q
		return
	}
	delete(s.queues, scope)
	for i, sc := range s.turns {
		if sc == scope {
			s.turns = append(s.turns[:i], s.turns[i+1:]...)
			break
		}
	}
}

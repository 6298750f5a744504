package actors

import (
	"github.com/asynkron/protoactor-go/actor"
)

// supervisor owns the pool of activated agent actors: it activates them on
// demand, passivates idle ones, and hands out the run slots that cap how many
// agents run at once, first come first served.
type supervisor struct {
	rt *Runtime
	// newAgent makes an agent's actor (tests put a probe in its place).
	newAgent func(key agentKey) actor.Actor

	children  map[agentKey]*actor.PID
	keys      map[string]agentKey // pid.Id -> key, to clean up on Terminated
	wakesSent map[agentKey]uint64

	slotsInUse  int
	slotHolders map[string]bool // pid.Id
	waiting     []*actor.PID
	waitingSet  map[string]bool

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
		slotHolders: make(map[string]bool),
		waitingSet:  make(map[string]bool),
		groups:      make(map[groupKey]*actor.PID),
		groupKeys:   make(map[string]groupKey),
		groupsSent:  make(map[groupKey]uint64),
	}
}

func (s *supervisor) Receive(ctx actor.Context) {
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
		ctx.Respond(Stats{ActiveAgents: len(s.children), RunningAgents: s.slotsInUse, WaitingAgents: len(s.waiting), ActiveGroups: len(s.groups)})
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
	if pid == nil || s.slotHolders[pid.Id] || s.waitingSet[pid.Id] {
		return
	}
	if s.slotsInUse < s.rt.cfg.MaxRunning {
		s.slotsInUse++
		s.slotHolders[pid.Id] = true
		ctx.Send(pid, &slotGranted{})
		return
	}
	s.waiting = append(s.waiting, pid)
	s.waitingSet[pid.Id] = true
}

func (s *supervisor) release(ctx actor.Context, pid *actor.PID) {
	if pid == nil || !s.slotHolders[pid.Id] {
		return
	}
	delete(s.slotHolders, pid.Id)
	s.slotsInUse--
	for len(s.waiting) > 0 && s.slotsInUse < s.rt.cfg.MaxRunning {
		next := s.waiting[0]
		s.waiting = s.waiting[1:]
		delete(s.waitingSet, next.Id)
		s.slotsInUse++
		s.slotHolders[next.Id] = true
		ctx.Send(next, &slotGranted{})
	}
}

func (s *supervisor) dropWaiting(pid *actor.PID) {
	if !s.waitingSet[pid.Id] {
		return
	}
	delete(s.waitingSet, pid.Id)
	for i, p := range s.waiting {
		if p.Id == pid.Id {
			s.waiting = append(s.waiting[:i], s.waiting[i+1:]...)
			return
		}
	}
}

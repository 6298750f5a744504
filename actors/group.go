package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/store"
)

// Group run modes.
const (
	ModeSerial   = "serial"   // members one after another, each seeing the work before it
	ModeParallel = "parallel" // members at once, then the lead
)

// Errors of StartGroupRun the API maps to 422.
var (
	ErrNoLead    = errors.New("the group has no member with a lead role")
	ErrNoMembers = errors.New("the group has no non-lead member to give the task to")
	ErrBadMode   = errors.New(`mode must be "serial" or "parallel"`)
)

// Blackboard is the group's shared memory as the orchestrator uses it.
type Blackboard interface {
	// Post writes an entry. A non-empty entry ID makes the write idempotent:
	// posting an id that exists is not an error and writes nothing.
	Post(ctx context.Context, scope store.Scope, groupID string, e BoardEntry) error
	// Digest renders the latest entries for a prompt ("" when empty).
	Digest(ctx context.Context, scope store.Scope, groupID string, limit int) (string, error)
}

// BoardEntry is one blackboard entry to post.
type BoardEntry struct {
	ID      string
	AgentID string // the author
	RunID   string
	Kind    string // fact, proposal, decision, todo
	Text    string
}

// groupKey names a group across scopes.
type groupKey struct {
	scope   store.Scope
	groupID string
}

// groupRunState is a group run's checkpoint: what the orchestrator has done.
// Every change to it is stored together with the events that announce it, so
// after a crash the orchestrator resumes exactly where it was.
type groupRunState struct {
	Mode       string                  `json:"mode"`
	Input      string                  `json:"input"`
	SessionKey string                  `json:"session_key"`
	GroupName  string                  `json:"group_name"`
	Lead       teamMember              `json:"lead"`
	Members    []teamMember            `json:"members"` // non-lead, in membership order
	Phase      string                  `json:"phase"`   // members, decide
	Results    map[string]memberResult `json:"results"` // by agent id, once recorded
	Tasked     map[string]bool         `json:"tasked"`  // member run ids whose message.task is stored
	Usage      store.Usage             `json:"usage"`
}

type teamMember struct {
	AgentID     string `json:"agent_id"`
	RoleID      string `json:"role_id"`
	RoleName    string `json:"role_name"`
	Description string `json:"description,omitempty"`
}

type memberResult struct {
	RunID  string          `json:"run_id"`
	Status string          `json:"status"`
	Output string          `json:"output,omitempty"`
	Error  *store.RunError `json:"error,omitempty"`
}

const (
	phaseMembers = "members"
	phaseDecide  = "decide"
)

// childRunNamespace makes member run ids a function of the group run, the
// phase and the agent: creating one twice (after a crash) is a conflict, not a
// second piece of work.
var childRunNamespace = uuid.MustParse("6f1c1b8e-8a57-4c3e-9d3f-2a7d3c0b9e41")

func childRunID(groupRunID, phase, agentID string) string {
	return "run_" + uuid.NewSHA1(childRunNamespace, []byte(groupRunID+"/"+phase+"/"+agentID)).String()
}

func childMessageID(runID string) string {
	return "msg_" + uuid.NewSHA1(childRunNamespace, []byte("message/"+runID)).String()
}

// BoardEntryID is the id of the blackboard entry the orchestrator writes for a
// run's proposal or decision, so a retried write finds it already there.
func BoardEntryID(runID string) string {
	return "mem_" + strings.ReplaceAll(uuid.NewSHA1(childRunNamespace, []byte("board/"+runID)).String(), "-", "")
}

// GroupRunRequest starts a group run.
type GroupRunRequest struct {
	GroupID    string
	Input      string
	SessionKey string
	Mode       string // serial (default) or parallel
}

// StartGroupRun stores a running group run and hands it to the group's actor.
// The members and their roles are fixed when the run starts.
func (r *Runtime) StartGroupRun(ctx context.Context, scope store.Scope, req GroupRunRequest) (store.Run, error) {
	if req.Mode == "" {
		req.Mode = ModeSerial
	}
	if req.Mode != ModeSerial && req.Mode != ModeParallel {
		return store.Run{}, ErrBadMode
	}
	group, err := r.store.GetGroup(ctx, scope, req.GroupID)
	if err != nil {
		return store.Run{}, fmt.Errorf("actors: group run: %w", err)
	}
	members, err := r.store.ListMembers(ctx, scope, req.GroupID)
	if err != nil {
		return store.Run{}, fmt.Errorf("actors: group run: %w", err)
	}
	st := groupRunState{Mode: req.Mode, Input: req.Input, SessionKey: req.SessionKey, GroupName: group.Name, Phase: phaseMembers, Results: map[string]memberResult{}}
	hasLead := false
	for _, m := range members {
		tm := teamMember{AgentID: m.AgentID, RoleID: m.RoleID, RoleName: m.RoleName}
		if role, err := r.store.GetRole(ctx, scope, m.RoleID); err == nil {
			tm.Description = role.Description
		}
		if m.IsLead {
			st.Lead, hasLead = tm, true
		} else {
			st.Members = append(st.Members, tm)
		}
	}
	if !hasLead {
		return store.Run{}, ErrNoLead
	}
	if len(st.Members) == 0 {
		return store.Run{}, ErrNoMembers
	}
	now := time.Now().UTC()
	run := store.Run{
		Scope: scope, ID: NewRunID(), GroupID: req.GroupID, SessionKey: req.SessionKey,
		Input: req.Input, Status: store.RunRunning, CreatedAt: now, StartedAt: &now,
	}
	raw, _ := json.Marshal(st)
	roster := make([]map[string]string, 0, len(members))
	for _, m := range append([]teamMember{st.Lead}, st.Members...) {
		roster = append(roster, map[string]string{"agent_id": m.AgentID, "role_id": m.RoleID, "role": m.RoleName})
	}
	started := groupEvent(scope, run.ID, req.GroupID, st.Lead.AgentID, "run.started", map[string]any{
		"input": req.Input, "session_key": req.SessionKey, "mode": req.Mode, "lead": st.Lead.AgentID, "members": roster, "from_step": 0,
	})
	run, stored, err := r.store.CreateGroupRun(ctx, run, store.Checkpoint{RunID: run.ID, Step: 0, State: raw, UpdatedAt: now}, []store.Event{started})
	if _, err := r.rec.Stored(stored, err); err != nil {
		return store.Run{}, fmt.Errorf("actors: group run: %w", err)
	}
	r.groupRunChanged(scope, req.GroupID, run.ID)
	return run, nil
}

// groupRunChanged asks the group's actor, on the node that owns the group,
// to look at the run again.
func (r *Runtime) groupRunChanged(scope store.Scope, groupID, runID string) {
	r.dispatch(events.Control{Kind: events.ControlGroup, Scope: scope, GroupID: groupID, RunID: runID})
}

func groupEvent(scope store.Scope, runID, groupID, agentID, typ string, payload any) store.Event {
	raw, err := json.Marshal(payload)
	if err != nil {
		raw, _ = json.Marshal(map[string]string{"marshal_error": err.Error()})
	}
	return store.Event{Scope: scope, RunID: runID, AgentID: agentID, GroupID: groupID, Type: typ, TS: time.Now().UTC(), Payload: raw}
}

// groupActor orchestrates a group's running group runs. It keeps no state of
// its own beyond which runs are active: every decision is made from the
// store (the run, its checkpoint and its members' runs), so it can be stopped
// and restarted at any point. The store reads and writes, and the blackboard
// posts (an embedding call when the embedder is remote), run in a worker
// goroutine per run, whose context the actor owns and which reports back with
// groupReconciled, so the actor always answers at once.
type groupActor struct {
	rt   *Runtime
	key  groupKey
	idle *idleTimer                // rechecks the active runs, or asks to be passivated
	runs map[string]*groupRunTrack // the active runs
	seen uint64

	// lifetime ends when the actor stops; the workers' contexts derive from it.
	lifetime context.Context
	stop     context.CancelCauseFunc

	// lease is the group's lease while this node holds it (Config.Leases
	// set): the workers' writes are fenced by it, and their contexts derive
	// from leaseLife, which ends when a renewal finds it lost.
	lease     *store.Lease
	leaseLife context.Context
	endLease  context.CancelCauseFunc
	draining  bool
	self      *actor.PID
	root      *actor.RootContext
}

// groupRunTrack is what the actor knows of one active run.
type groupRunTrack struct {
	busy    bool // a reconcile of the run is in flight
	again   bool // news arrived while it was: reconcile once more after it
	backoff time.Duration
	retry   *time.Timer
}

func newGroupActor(rt *Runtime, key groupKey) *groupActor {
	return &groupActor{rt: rt, key: key, runs: make(map[string]*groupRunTrack)}
}

// groupRecheck re-examines active runs that had no news for that long, a
// safety net for a notice lost with a crashed member or a run cancelled behind
// the actor's back; without active runs the actor asks to be passivated. Runs
// advance on notices (a member's run ended, a cancel), not on this.
const groupRecheck = 10 * time.Second

func (g *groupActor) Receive(ctx actor.Context) {
	g.idle.seen(ctx.Message())
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		g.lifetime, g.stop = context.WithCancelCause(g.rt.lifetime)
		g.self, g.root = ctx.Self(), ctx.ActorSystem().Root
		g.idle = newIdleTimer(g.recheck(), g.root, g.self)
	case *actor.Stopping:
		g.idle.stop()
		g.stop(errShutdown)
		busy := false
		for _, t := range g.runs {
			if t.retry != nil {
				t.retry.Stop()
			}
			busy = busy || t.busy
		}
		if !busy {
			// A reconcile in flight keeps the lease until it ends:
			// Runtime.Stop releases it then.
			g.dropLease(true)
		}
	case *drainNow:
		g.draining = true
		g.handBack(ctx)
	case *leaseLost:
		if g.lease == nil || g.lease.Epoch != msg.lease.Epoch {
			return
		}
		g.endLease(errLeaseLost)
		g.dropLease(false)
		g.dropRuns()
		g.passivate(ctx)
	case *reconcileGroupRun:
		g.seen++
		g.reconcile(ctx, msg.runID)
	case *groupRetry:
		if t, ok := g.runs[msg.runID]; ok {
			t.retry = nil
			g.reconcile(ctx, msg.runID)
		}
	case *groupReconciled:
		g.onReconciled(ctx, msg)
	case *idleTick:
		if !g.idle.due(msg) {
			return
		}
		for id, t := range g.runs {
			if t.retry == nil {
				g.reconcile(ctx, id)
			}
		}
		if len(g.runs) == 0 {
			ctx.Request(ctx.Parent(), &groupIdle{key: g.key, seen: g.seen})
		}
	}
}

func (g *groupActor) recheck() time.Duration {
	if g.rt.groupRecheck > 0 {
		return g.rt.groupRecheck
	}
	return groupRecheck
}

// reconcile starts a worker that advances the run, or, if one is in flight,
// has it run once more after.
func (g *groupActor) reconcile(ctx actor.Context, runID string) {
	if g.lifetime.Err() != nil {
		return
	}
	if g.draining || g.rt.draining.Load() {
		g.draining = true
		g.handBack(ctx)
		return
	}
	if !g.takeLease(ctx, runID) {
		return
	}
	t, ok := g.runs[runID]
	if !ok {
		t = &groupRunTrack{}
		g.runs[runID] = t
	}
	if t.busy {
		t.again = true
		return
	}
	t.busy, t.again = true, false
	self := ctx.Self()
	root := ctx.ActorSystem().Root
	life := g.lifetime
	if g.lease != nil {
		life = store.WithFence(g.leaseLife, *g.lease) // every write of the step is made under the lease
	}
	g.rt.goWorker(func() {
		wctx, cancel := context.WithTimeout(life, g.rt.cfg.StoreTimeout)
		defer cancel()
		var (
			done bool
			err  error
		)
		defer func() {
			if p := recover(); p != nil {
				done, err = false, fmt.Errorf("panic in group run: %v", p)
			}
			root.Send(self, &groupReconciled{runID: runID, done: done, err: err})
		}()
		done, err = g.rt.advanceGroupRun(wctx, g.key.scope, runID)
	})
}

func (g *groupActor) onReconciled(ctx actor.Context, msg *groupReconciled) {
	t, ok := g.runs[msg.runID]
	if !ok {
		return
	}
	t.busy = false
	if errors.Is(msg.err, store.ErrFenced) || (g.rt.leased() && g.lease == nil) {
		// Another node orchestrates the group now.
		g.rt.logger.Info("group orchestration stopped: another node owns it", "group", g.key.groupID, "run", msg.runID)
		g.dropLease(false)
		g.dropRuns()
		g.passivate(ctx)
		return
	}
	defer func() {
		if g.draining {
			g.handBack(ctx)
		}
	}()
	switch {
	case g.lifetime.Err() != nil:
	case msg.done:
		delete(g.runs, msg.runID)
	case msg.err != nil:
		g.retryLater(ctx, msg.runID, t, msg.err)
	default:
		t.backoff = 0
		if t.again {
			g.reconcile(ctx, msg.runID)
		}
	}
}

// takeLease makes sure the actor holds the group's lease before it works on
// runID. false: another node owns the group or this node drains (the actor
// passivates), or the store failed (runID is retried after a backoff).
func (g *groupActor) takeLease(ctx actor.Context, runID string) bool {
	if !g.rt.leased() || g.lease != nil {
		return true
	}
	sctx, cancel := g.rt.storeCtx()
	defer cancel()
	self, root := g.self, g.root
	ref := store.LeaseRef{Scope: g.key.scope, Kind: store.LeaseGroup, Key: g.key.groupID}
	l, err := g.rt.acquireLease(sctx, ref, func(l store.Lease) { root.Send(self, &leaseLost{lease: l}) })
	switch {
	case err == nil:
		g.lease = &l
		g.leaseLife, g.endLease = context.WithCancelCause(g.lifetime)
		return true
	case errors.Is(err, store.ErrLeaseHeld), errors.Is(err, errDraining):
		g.dropRuns()
		g.passivate(ctx)
		return false
	default:
		t, ok := g.runs[runID]
		if !ok {
			t = &groupRunTrack{}
			g.runs[runID] = t
		}
		g.retryLater(ctx, runID, t, err)
		return false
	}
}

// dropLease forgets the group's lease, giving it back to the store when
// release is set.
func (g *groupActor) dropLease(release bool) {
	if g.lease == nil {
		return
	}
	l := *g.lease
	g.lease = nil
	g.endLease(errLeaseLost)
	if release {
		g.rt.releaseLease(l)
	} else {
		g.rt.leases.drop(l)
	}
}

// dropRuns forgets the active runs: their owner, on this node or another,
// finds them in the store.
func (g *groupActor) dropRuns() {
	for id, t := range g.runs {
		if t.retry != nil {
			t.retry.Stop()
		}
		delete(g.runs, id)
	}
}

func (g *groupActor) passivate(ctx actor.Context) {
	ctx.Request(ctx.Parent(), &groupIdle{key: g.key, seen: g.seen})
}

// handBack, while the node drains, waits for the reconciles in flight (each
// one step), then releases the lease and passivates: Drain dispatches the
// runs left to another node.
func (g *groupActor) handBack(ctx actor.Context) {
	for _, t := range g.runs {
		if t.busy {
			return // onReconciled comes back here
		}
	}
	g.dropRuns()
	g.dropLease(true)
	g.passivate(ctx)
}

// retryLater reconciles the run again after a backoff that doubles with
// each failure.
func (g *groupActor) retryLater(ctx actor.Context, runID string, t *groupRunTrack, err error) {
	if t.backoff == 0 {
		t.backoff = g.rt.cfg.ErrorBackoff
	} else {
		t.backoff = min(t.backoff*2, g.rt.cfg.ErrorBackoffMax)
	}
	g.rt.logger.Warn("group run: will retry", "group", g.key.groupID, "run", runID, "in", t.backoff, "err", err)
	if t.retry == nil {
		self := ctx.Self()
		root := ctx.ActorSystem().Root
		t.retry = time.AfterFunc(t.backoff, func() { root.Send(self, &groupRetry{runID: runID}) })
	}
}

// advanceGroupRun moves a group run as far as its members' runs allow and
// reports whether it has ended.
func (r *Runtime) advanceGroupRun(ctx context.Context, scope store.Scope, runID string) (bool, error) {
	run, err := r.store.GetRun(ctx, scope, runID)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if store.RunFinished(run.Status) {
		return true, nil
	}
	cp, err := r.store.GetCheckpoint(ctx, scope, runID)
	if err != nil {
		return false, fmt.Errorf("checkpoint: %w", err)
	}
	var st groupRunState
	if err := json.Unmarshal(cp.State, &st); err != nil {
		return true, r.finishGroupRun(ctx, run, &st, store.RunResult{Status: store.RunFailed, Error: &store.RunError{Code: "bad_checkpoint", Message: err.Error()}}, nil)
	}
	if st.Results == nil {
		st.Results = map[string]memberResult{}
	}
	if st.Tasked == nil {
		st.Tasked = map[string]bool{}
	}
	o := &orchestration{rt: r, run: run, st: &st, step: cp.Step}
	if run.CancelRequested {
		return true, o.cancel(ctx)
	}
	return o.advance(ctx)
}

// orchestration is one pass over a group run.
type orchestration struct {
	rt   *Runtime
	run  store.Run
	st   *groupRunState
	step int
}

func (o *orchestration) advance(ctx context.Context) (bool, error) {
	if o.st.Phase == phaseMembers {
		for _, m := range o.st.Members {
			if _, ok := o.st.Results[m.AgentID]; ok {
				continue
			}
			finished, err := o.member(ctx, m)
			if err != nil {
				return false, err
			}
			if !finished && o.st.Mode == ModeSerial {
				return false, nil // the next member starts after this one
			}
		}
		if len(o.st.Results) < len(o.st.Members) {
			return false, nil
		}
		o.st.Phase = phaseDecide
		if err := o.save(ctx, nil); err != nil {
			return false, err
		}
	}
	return o.decide(ctx)
}

// member gives the member its task if it has none yet, and records its answer
// once its run has ended. It reports whether the member's work is recorded.
func (o *orchestration) member(ctx context.Context, m teamMember) (bool, error) {
	child, err := o.ensureChild(ctx, phaseMembers, m, func(context.Context) string { return o.taskText(m) })
	if err != nil || !store.RunFinished(child.Status) {
		return false, err
	}
	res := memberResult{RunID: child.ID, Status: child.Status, Output: child.Output, Error: child.Error}
	o.st.Results[m.AgentID] = res
	addUsage(&o.st.Usage, child.Usage)
	var ev store.Event
	if child.Status == store.RunCompleted {
		if err := o.post(ctx, BoardEntry{ID: BoardEntryID(child.ID), AgentID: m.AgentID, RunID: o.run.ID, Kind: "proposal", Text: child.Output}); err != nil {
			return false, err
		}
		ev = o.event(m.AgentID, "message.proposal", map[string]any{
			"from": m.AgentID, "to": o.st.Lead.AgentID, "role": m.RoleName, "content": child.Output, "run_id": child.ID,
		})
	} else {
		ev = o.event(m.AgentID, "message.status", map[string]any{
			"from": m.AgentID, "role": m.RoleName, "status": child.Status, "error": child.Error, "run_id": child.ID,
		})
	}
	return true, o.save(ctx, []store.Event{ev})
}

// decide asks the lead for the decision and ends the group run with it.
func (o *orchestration) decide(ctx context.Context) (bool, error) {
	lead := o.st.Lead
	child, err := o.ensureChild(ctx, phaseDecide, lead, func(ctx context.Context) string {
		digest := ""
		if bb := o.rt.cfg.Blackboard; bb != nil {
			var err error
			if digest, err = bb.Digest(ctx, o.run.Scope, o.run.GroupID, 20); err != nil {
				o.rt.logger.Warn("group run: blackboard digest", "group", o.run.GroupID, "err", err)
			}
		}
		return o.decisionText(digest)
	})
	if err != nil || !store.RunFinished(child.Status) {
		return false, err
	}
	addUsage(&o.st.Usage, child.Usage)
	if child.Status != store.RunCompleted {
		code := "lead_" + child.Status
		msg := "the lead's run " + child.ID + " ended " + child.Status
		if child.Error != nil {
			msg += ": " + child.Error.Message
		}
		status := o.event(lead.AgentID, "message.status", map[string]any{"from": lead.AgentID, "role": lead.RoleName, "status": child.Status, "error": child.Error, "run_id": child.ID})
		return true, o.rt.finishGroupRun(ctx, o.run, o.st, store.RunResult{Status: store.RunFailed, Error: &store.RunError{Code: code, Message: msg}}, []store.Event{status})
	}
	memID := BoardEntryID(child.ID)
	if err := o.post(ctx, BoardEntry{ID: memID, AgentID: lead.AgentID, RunID: o.run.ID, Kind: "decision", Text: child.Output}); err != nil {
		return false, err
	}
	decision := o.event(lead.AgentID, "message.decision", map[string]any{
		"from": lead.AgentID, "role": lead.RoleName, "content": child.Output, "run_id": child.ID, "memory_id": memID,
	})
	return true, o.rt.finishGroupRun(ctx, o.run, o.st, store.RunResult{Status: store.RunCompleted, Output: child.Output}, []store.Event{decision})
}

// ensureChild returns the member's run for this phase, creating it when it
// does not exist yet. The message.task event is stored first, with the state
// that records it, and the run is created after under its deterministic id:
// a crash between the two creates the run on the next pass without a second
// task event, and a crash after finds the run by id.
func (o *orchestration) ensureChild(ctx context.Context, phase string, m teamMember, taskOf func(context.Context) string) (store.Run, error) {
	id := childRunID(o.run.ID, phase, m.AgentID)
	child, err := o.rt.store.GetRun(ctx, o.run.Scope, id)
	if err == nil {
		return child, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Run{}, fmt.Errorf("member run: %w", err)
	}
	task := taskOf(ctx) // only when the run is missing: the lead's includes a blackboard read
	if !o.st.Tasked[id] {
		purpose := "work"
		if phase == phaseDecide {
			purpose = "decide"
		}
		o.st.Tasked[id] = true
		if err := o.save(ctx, []store.Event{o.event(o.st.Lead.AgentID, "message.task", map[string]any{
			"from": o.st.Lead.AgentID, "to": m.AgentID, "role": m.RoleName, "purpose": purpose, "content": task, "task_run_id": id,
		})}); err != nil {
			return store.Run{}, err
		}
	}
	child, _, err = o.rt.store.CreateRun(ctx, store.NewRun{
		Scope: o.run.Scope, RunID: id, MessageID: childMessageID(id), AgentID: m.AgentID,
		SessionKey: memberSession(o.run.GroupID, o.st.SessionKey), GroupID: o.run.GroupID,
		ParentRunID: o.run.ID, RoleID: m.RoleID, Input: task,
		SenderType: store.SenderGroup, SenderID: o.run.ID,
	})
	if errors.Is(err, store.ErrConflict) {
		return o.rt.store.GetRun(ctx, o.run.Scope, id)
	}
	if err != nil {
		return store.Run{}, fmt.Errorf("member run: %w", err)
	}
	o.rt.Wake(o.run.Scope, m.AgentID)
	return child, nil
}

// memberSession keeps a team's conversations apart from the members' other work
// while letting them remember earlier runs of the same group and session.
func memberSession(groupID, session string) string {
	if session == "" {
		session = "default"
	}
	return "group:" + groupID + ":" + session
}

func (o *orchestration) taskText(m teamMember) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Team task from the group %q: %s\n\n", o.st.GroupName, o.st.Input)
	fmt.Fprintf(&b, "You work on it as the team's %s.", m.RoleName)
	if m.Description != "" {
		fmt.Fprintf(&b, " %s", m.Description)
	}
	b.WriteString("\n")
	if o.st.Mode == ModeSerial {
		prev := o.previousWork()
		if prev != "" {
			b.WriteString("\nWork of your teammates so far:\n")
			b.WriteString(prev)
		}
	}
	b.WriteString("\nAnswer with your proposal: what you found and what you recommend, concisely. The lead decides from the proposals.")
	return b.String()
}

func (o *orchestration) decisionText(digest string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Team task from the group %q: %s\n\n", o.st.GroupName, o.st.Input)
	b.WriteString("Proposals of the team:\n")
	b.WriteString(o.previousWork())
	if digest != "" {
		b.WriteString("\nThe group's blackboard (latest entries):\n")
		b.WriteString(digest)
	}
	fmt.Fprintf(&b, "\nYou are the lead (%s). Weigh the proposals and the blackboard and give the team's decision: what to do and why.", o.st.Lead.RoleName)
	return b.String()
}

// previousWork lists the recorded results in membership order.
func (o *orchestration) previousWork() string {
	var b strings.Builder
	for _, m := range o.st.Members {
		res, ok := o.st.Results[m.AgentID]
		if !ok {
			continue
		}
		if res.Status == store.RunCompleted {
			fmt.Fprintf(&b, "- %s (%s): %s\n", m.RoleName, m.AgentID, res.Output)
		} else {
			reason := res.Status
			if res.Error != nil {
				reason += ": " + res.Error.Message
			}
			fmt.Fprintf(&b, "- %s (%s) produced no proposal (%s)\n", m.RoleName, m.AgentID, reason)
		}
	}
	return b.String()
}

func (o *orchestration) post(ctx context.Context, e BoardEntry) error {
	bb := o.rt.cfg.Blackboard
	if bb == nil || strings.TrimSpace(e.Text) == "" {
		return nil
	}
	if err := bb.Post(ctx, o.run.Scope, o.run.GroupID, e); err != nil {
		return fmt.Errorf("blackboard: %w", err)
	}
	return nil
}

func (o *orchestration) event(agentID, typ string, payload any) store.Event {
	return groupEvent(o.run.Scope, o.run.ID, o.run.GroupID, agentID, typ, payload)
}

// save stores the new state with the events that announce it, in one transaction.
func (o *orchestration) save(ctx context.Context, events []store.Event) error {
	o.step++
	raw, _ := json.Marshal(o.st)
	if _, err := o.rt.rec.Stored(o.rt.store.SaveStep(ctx, o.run.Scope, o.run.ID, &store.Checkpoint{RunID: o.run.ID, Step: o.step, State: raw, UpdatedAt: time.Now().UTC()}, events)); err != nil {
		return fmt.Errorf("save group run: %w", err)
	}
	return nil
}

// cancel stops the members' runs and ends the group run cancelled.
func (o *orchestration) cancel(ctx context.Context) error {
	children, _, err := o.rt.store.ListRuns(ctx, o.run.Scope, store.RunFilter{ParentRunID: o.run.ID}, store.Page{Limit: 200})
	if err != nil {
		return fmt.Errorf("cancel members: %w", err)
	}
	for _, c := range children {
		if !store.RunFinished(c.Status) {
			if _, err := o.rt.CancelRun(ctx, o.run.Scope, c.ID); err != nil && !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("cancel member run %s: %w", c.ID, err)
			}
		}
	}
	return o.rt.finishGroupRun(ctx, o.run, o.st, store.RunResult{Status: store.RunCancelled, Error: &store.RunError{Code: "cancelled", Message: "cancelled by request"}}, nil)
}

// finishGroupRun ends the group run with its terminal event.
func (r *Runtime) finishGroupRun(ctx context.Context, run store.Run, st *groupRunState, res store.RunResult, events []store.Event) error {
	lead := st.Lead.AgentID
	res.Steps = len(st.Results)
	res.Usage = st.Usage
	switch res.Status {
	case store.RunCompleted:
		events = append(events, groupEvent(run.Scope, run.ID, run.GroupID, lead, "run.completed", map[string]any{"output": res.Output, "steps": res.Steps, "usage": res.Usage}))
	case store.RunFailed:
		events = append(events, groupEvent(run.Scope, run.ID, run.GroupID, lead, "run.failed", map[string]any{"error": res.Error, "steps": res.Steps}))
	case store.RunCancelled:
		events = append(events, groupEvent(run.Scope, run.ID, run.GroupID, lead, "run.cancelled", map[string]any{"error": res.Error, "steps": res.Steps}))
	}
	_, err := r.rec.Stored(r.store.FinishRun(ctx, run.Scope, run.ID, res, events))
	if errors.Is(err, store.ErrConflict) {
		return nil // already ended
	}
	if err != nil {
		return fmt.Errorf("finish group run: %w", err)
	}
	r.cfg.Observer.RunFinished(res.Status)
	return nil
}

func addUsage(sum *store.Usage, u store.Usage) {
	sum.PromptTokens += u.PromptTokens
	sum.CompletionTokens += u.CompletionTokens
	sum.TotalTokens += u.TotalTokens
	sum.CacheReadTokens += u.CacheReadTokens
	sum.CacheWriteTokens += u.CacheWriteTokens
}

// reportMessageID is the id of a spawned agent's report of one run.
func reportMessageID(runID string) string {
	return "msg_" + uuid.NewSHA1(childRunNamespace, []byte("report/"+runID)).String()
}

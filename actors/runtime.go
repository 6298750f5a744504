// Package actors runs OpenIntern's agents as proto.actor actors.
//
// A supervisor actor owns the pool: it activates an agent actor when the agent
// has mail, passivates it after it has been idle, and caps how many agents run
// at once. Each agent actor owns its state machine (idle, running, paused,
// error, terminated) and runs its turns in a worker goroutine, so pause, cancel and new
// wake-ups are handled while an LLM call is in flight. All durable state lives
// in the store: an actor can be stopped at any moment and the next message
// brings it back with nothing lost.
package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// Store is what the agents need from the database.
type Store interface {
	store.AgentStore
	store.MessageStore
	store.RunStore
	store.EventStore
	store.TeamStore
}

// ToolRouter gives the model its tools and runs the calls it makes.
type ToolRouter interface {
	// SpecsFor is the specs of the tools an agent of scope may use: the
	// daemon's and the scope's own (its tenant MCP servers').
	SpecsFor(ctx context.Context, scope store.Scope, allowed []string) []llm.ToolSpec
	// RouteDetail runs a call (see tools.Registry.RouteDetail): its result,
	// outcome and the tool policy's verdict.
	RouteDetail(ctx context.Context, call tools.Call, allowed []string) tools.Routed
}

// Config tunes the runtime.
type Config struct {
	MaxRunning      int           // agents running at once; the rest wait (FIFO within a scope, scopes in turn)
	MaxSteps        int           // steps per run before it fails
	IdleTimeout     time.Duration // an idle agent's actor is stopped after this
	SessionHistory  int           // earlier turns of the session put in context
	ErrorBackoff    time.Duration // first delay after an infrastructure or LLM failure; doubles to ErrorBackoffMax
	ErrorBackoffMax time.Duration
	StoreTimeout    time.Duration // bound on each store write made outside a request
	DefaultModel    string
	DefaultPrompt   string
	Memory          Memory       // long-term memory: recall and core blocks in context; nil: none
	Blackboard      Blackboard   // groups' blackboards: proposals and decisions are posted; nil: none
	Observer        Observer     // metrics of runs, steps, model and tool calls, store writes; nil: none
	Tracer          trace.Tracer // spans of runs, steps, model and tool calls (GenAI conventions); nil: none
	Skills          Skills       // the granted skills listed in the system prompt; nil: none

	// MaxRunningPerScope caps the agents of one scope running at once (0: no
	// cap beyond MaxRunning), so one tenant cannot hold every slot.
	MaxRunningPerScope int

	// Approvals keeps the calls a tool policy asks a person about (nil: the
	// store's, when it keeps them; else such a call is refused).
	Approvals store.ApprovalStore
	// ApprovalTimeout is how long an approval waits before it expires and
	// the model is told "denied: expired" (default DefaultApprovalTimeout).
	ApprovalTimeout time.Duration
	// ApprovalSweep is how often expired approvals are looked for (default 15 s).
	ApprovalSweep time.Duration

	// NodeID names this daemon among those sharing the store.
	NodeID string
	// Leases makes agents and groups work only while this node holds their
	// lease, with every write of their work fenced by it (see cluster.go).
	// nil: no leases, a single daemon.
	Leases store.LeaseStore
	// LeaseTTL is how long a lease (and the node's heartbeat) lives without
	// renewal (default 15 s); renewed every LeaseTTL/3.
	LeaseTTL time.Duration
	// SweepInterval is how often work nobody owns is looked for (default
	// LeaseTTL/2).
	SweepInterval time.Duration
	// NodeAddr and Version are reported with the node's heartbeat.
	NodeAddr string
	Version  string
}

// DefaultApprovalTimeout is Config.ApprovalTimeout's default.
const DefaultApprovalTimeout = 24 * time.Hour

func (c *Config) defaults() {
	if c.MaxRunning <= 0 {
		c.MaxRunning = 64
	}
	if c.MaxSteps <= 0 {
		c.MaxSteps = 12
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.ErrorBackoff <= 0 {
		c.ErrorBackoff = 500 * time.Millisecond
	}
	if c.ErrorBackoffMax <= 0 {
		c.ErrorBackoffMax = 30 * time.Second
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = 15 * time.Second
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Tracer == nil {
		c.Tracer = defaultTracer()
	}
	if c.ApprovalTimeout <= 0 {
		c.ApprovalTimeout = DefaultApprovalTimeout
	}
	if c.ApprovalSweep <= 0 {
		c.ApprovalSweep = 15 * time.Second
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 15 * time.Second
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = c.LeaseTTL / 2
	}
	if c.DefaultPrompt == "" {
		c.DefaultPrompt = "You are a helpful, precise assistant working inside OpenIntern. Use tools when they help."
	}
}

// Runtime is the actor system hosting the supervisor and the agents.
type Runtime struct {
	cfg    Config
	store  Store
	bus    events.Bus
	rec    events.Recorder // every store-then-publish of events
	model  llm.Provider
	tools  ToolRouter
	logger *slog.Logger
	// approvals is Config.Approvals, or the store's; nil: none kept.
	approvals store.ApprovalStore

	system     *actor.ActorSystem
	supervisor *actor.PID
	// supervisorDone is closed when the supervisor (and so every actor) has stopped.
	supervisorDone chan struct{}
	// lifetime is cancelled (with errShutdown) when the runtime stops; every
	// agent's turn context derives from it.
	lifetime context.Context
	shutdown context.CancelCauseFunc
	// storeLife bounds every store write made outside a request (storeCtx). Stop
	// cancels it when its deadline passes with workers still running, so a
	// straggler cannot write into a store the daemon is about to close.
	storeLife   context.Context
	cancelStore context.CancelCauseFunc
	// newAgent, when set, makes agents' actors in place of agentActor (tests).
	newAgent func(key agentKey) actor.Actor
	// groupRecheck overrides the group actors' groupRecheck (tests).
	groupRecheck time.Duration

	// workers counts the goroutines the actors start (turn workers, group
	// reconciles, checks); Stop returns only once they have ended.
	workers workerGroup
	// sweeper counts the background loops (the approvals' expiry sweep, the
	// lease renewal and the unowned-work sweep), which end with lifetime.
	sweeper sync.WaitGroup

	// dispatcher delivers Controls to the node that should act on them.
	dispatcher events.Dispatcher
	// leases are the leases this node holds (Config.Leases set).
	leases leases
	// draining is set by Drain: no lease is taken, no work started.
	draining atomic.Bool
	// load is the count of active agent and group actors, kept by the supervisor.
	load atomic.Int64
	// started is when Start ran, for the node's heartbeat.
	started time.Time

	// mu orders Wake and the other senders against Start and Stop: nothing is
	// sent to an actor system that is not running.
	mu    sync.RWMutex
	phase int // phaseNew, phaseRunning, phaseStopped
}

const (
	phaseNew = iota
	phaseRunning
	phaseStopped
)

// New returns a runtime; Start it before use.
func New(cfg Config, st Store, bus events.Bus, model llm.Provider, router ToolRouter, logger *slog.Logger) *Runtime {
	cfg.defaults()
	r := &Runtime{cfg: cfg, store: st, bus: bus, rec: events.Recorder{Bus: bus}, model: model, tools: router, logger: logger}
	r.approvals = cfg.Approvals
	if as, ok := st.(store.ApprovalStore); ok && r.approvals == nil {
		r.approvals = as
	}
	r.lifetime, r.shutdown = context.WithCancelCause(context.Background())
	r.storeLife, r.cancelStore = context.WithCancelCause(context.Background())
	r.dispatcher = events.LocalDispatcher{Handle: r.HandleControl}
	return r
}

var (
	errShutdown     = errors.New("daemon shutting down")
	errRunCancelled = errors.New("run cancelled")
	// ErrNotRunning is returned by calls that need the actors when the runtime
	// is not started or already stopped.
	ErrNotRunning = errors.New("actors: runtime not running")
)

// Start spawns the supervisor and wakes every agent left with work by a previous
// process: runs that were running resume from their checkpoint, unread messages
// start new runs. With leases, only the work no other node owns is woken, through
// the dispatcher, and a loop renews the leases and sweeps for unowned work. A
// Start that fails stops what it started.
func (r *Runtime) Start(ctx context.Context) (err error) {
	r.mu.Lock()
	if r.phase != phaseNew {
		r.mu.Unlock()
		return errors.New("actors: start: runtime already started")
	}
	if r.leased() && r.cfg.NodeID == "" {
		r.mu.Unlock()
		return errors.New("actors: start: Config.Leases needs a NodeID")
	}
	r.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return r.logger.With("lib", "protoactor")
	}))
	r.supervisorDone = make(chan struct{})
	r.supervisor = r.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return newSupervisor(r) }))
	// Running before the recovery reads: a message committed after them is
	// woken normally, one committed before is in what they return.
	r.phase = phaseRunning
	r.started = time.Now().UTC()
	r.mu.Unlock()
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), r.cfg.StoreTimeout)
			defer cancel()
			_ = r.Stop(sctx)
		}
	}()

	if r.leased() {
		if err := r.startCluster(ctx); err != nil {
			return err
		}
	} else if err := r.recoverWork(ctx); err != nil {
		return err
	}
	if r.approvals != nil {
		r.sweeper.Add(1)
		go func() {
			defer r.sweeper.Done()
			r.sweepApprovals()
		}()
	}
	return nil
}

// recoverWork wakes the agents and group runs a previous process left with work.
func (r *Runtime) recoverWork(ctx context.Context) error {
	refs, err := r.store.ListAgentsWithWork(ctx)
	if err != nil {
		return fmt.Errorf("actors: recovery: %w", err)
	}
	for _, ref := range refs {
		r.Wake(ref.Scope, ref.AgentID)
	}
	if len(refs) > 0 {
		r.logger.Info("recovery: woke agents with pending work", "agents", len(refs))
	}
	groupRuns, err := r.store.ActiveGroupRuns(ctx)
	if err != nil {
		return fmt.Errorf("actors: recovery: %w", err)
	}
	for _, run := range groupRuns {
		r.groupRunChanged(run.Scope, run.GroupID, run.ID)
	}
	if len(groupRuns) > 0 {
		r.logger.Info("recovery: resumed group runs", "runs", len(groupRuns))
	}
	return nil
}

// startCluster wakes the work no other node owns and starts the renewal
// loop and the sweep.
func (r *Runtime) startCluster(ctx context.Context) error {
	r.renewOnce(ctx) // the node's heartbeat is there before it takes work
	agents, groupRuns, err := r.dispatchUnowned(ctx)
	if err != nil {
		return fmt.Errorf("actors: recovery: %w", err)
	}
	if agents+groupRuns > 0 {
		r.logger.Info("recovery: dispatched unowned work", "agents", agents, "group_runs", groupRuns)
	}
	r.sweeper.Add(2)
	go func() {
		defer r.sweeper.Done()
		r.renewLeases()
	}()
	go func() {
		defer r.sweeper.Done()
		r.sweepUnowned()
	}()
	return nil
}

// Stop stops every agent at its next step boundary (in-flight LLM calls are
// aborted; their runs resume from the last checkpoint on the next start), then
// the actor system, and returns once every worker has ended. If ctx ends first,
// the store writes of the workers still running are cancelled, so none lands
// after Stop returns, and Stop reports it. Safe twice and without Start.
func (r *Runtime) Stop(ctx context.Context) error {
	r.mu.Lock()
	if r.phase != phaseRunning {
		r.phase = phaseStopped
		r.mu.Unlock()
		return nil
	}
	r.phase = phaseStopped
	r.mu.Unlock()

	r.shutdown(errShutdown)
	r.sweeper.Wait() // it ends with lifetime, within one store write
	// A system message: the supervisor stops its children first, without
	// waiting for the user messages queued before it.
	r.system.Root.Stop(r.supervisor)
	var err error
	select {
	case <-r.supervisorDone:
		err = r.workers.wait(ctx)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		r.cancelStore(errShutdown)
		err = fmt.Errorf("actors: stop: %d workers still running, their store writes cancelled: %w", r.workers.count(), err)
	} else {
		// The workers have ended: what they held can go to another node now.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.StoreTimeout)
		r.releaseAll(rctx)
		cancel()
	}
	r.system.Shutdown()
	return err
}

// send delivers msg to the supervisor if the runtime is running. It never blocks.
func (r *Runtime) send(msg any) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.phase != phaseRunning {
		return false
	}
	r.system.Root.Send(r.supervisor, msg)
	return true
}

// request asks the supervisor and waits for the answer.
func (r *Runtime) request(msg any, timeout time.Duration) (any, error) {
	r.mu.RLock()
	if r.phase != phaseRunning {
		r.mu.RUnlock()
		return nil, ErrNotRunning
	}
	f := r.system.Root.RequestFuture(r.supervisor, msg, timeout)
	r.mu.RUnlock()
	return f.Result()
}

// Wake tells the agent, on the node that owns it, that it has mail.
func (r *Runtime) Wake(scope store.Scope, agentID string) {
	r.dispatch(events.Control{Kind: events.ControlWake, Scope: scope, AgentID: agentID})
}

// AgentChanged tells an active agent that its row changed (updated or
// deleted), so its next turn reads it again. It never blocks.
func (r *Runtime) AgentChanged(scope store.Scope, agentID string) {
	r.send(&notifyAgent{key: agentKey{scope, agentID}, msg: &agentChanged{}})
}

// Pause stops the agent at its next step boundary and keeps it from starting
// runs; messages keep queueing. Returns the new state. An agent another node
// may own is paused in the store first (see changeStateRemote).
func (r *Runtime) Pause(ctx context.Context, scope store.Scope, agentID string) (string, error) {
	if r.leased() && !r.ownsAgent(scope, agentID) {
		return r.changeStateRemote(ctx, scope, agentID, true)
	}
	return r.askState(ctx, scope, agentID, &pauseAgent{})
}

// Resume lets a paused agent run again.
func (r *Runtime) Resume(ctx context.Context, scope store.Scope, agentID string) (string, error) {
	if r.leased() && !r.ownsAgent(scope, agentID) {
		return r.changeStateRemote(ctx, scope, agentID, false)
	}
	return r.askState(ctx, scope, agentID, &resumeAgent{})
}

func (r *Runtime) ownsAgent(scope store.Scope, agentID string) bool {
	return r.leases.has(store.LeaseRef{Scope: scope, Kind: store.LeaseAgent, Key: agentID})
}

func (r *Runtime) askState(ctx context.Context, scope store.Scope, agentID string, msg any) (string, error) {
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	res, err := r.request(&forwardToAgent{key: agentKey{scope, agentID}, msg: msg}, timeout)
	if err != nil {
		return "", fmt.Errorf("actors: %T: %w", msg, err)
	}
	reply, ok := res.(*stateReply)
	if !ok {
		return "", fmt.Errorf("actors: unexpected reply %T", res)
	}
	return reply.state, reply.err
}

// CancelRun cancels a pending run, or stops a running one at once (its LLM call
// is aborted). It returns the run as stored after the request.
func (r *Runtime) CancelRun(ctx context.Context, scope store.Scope, runID string) (store.Run, error) {
	run, err := r.store.CancelRun(ctx, scope, runID)
	if err != nil {
		return run, err
	}
	if run.Status == store.RunCancelled {
		// A pending run never reached an agent: record its end here.
		payload, _ := json.Marshal(map[string]any{"error": store.RunError{Code: "cancelled", Message: "cancelled before it started"}, "steps": 0})
		_, err := r.rec.Stored(r.store.AppendEvents(ctx, []store.Event{{Scope: scope, RunID: run.ID, AgentID: run.AgentID, GroupID: run.GroupID, Type: "run.cancelled", TS: time.Now().UTC(), Payload: payload}}))
		if err != nil {
			return run, fmt.Errorf("actors: record cancel: %w", err)
		}
		r.cfg.Observer.RunFinished(store.RunCancelled)
	}
	switch {
	case run.AgentID == "" && run.GroupID != "":
		r.groupRunChanged(scope, run.GroupID, run.ID) // a group run: its actor cancels the members
	case run.Status == store.RunRunning:
		r.dispatch(events.Control{Kind: events.ControlCancel, Scope: scope, AgentID: run.AgentID, RunID: runID})
		// A run that waited for an approval is running again but no worker
		// has it: the agent claims it and ends it cancelled.
		r.Wake(scope, run.AgentID)
	}
	if run.ParentRunID != "" && run.Status == store.RunCancelled {
		r.groupRunChanged(scope, run.GroupID, run.ParentRunID)
	}
	return run, nil
}

// Stats reports the pool's counters.
func (r *Runtime) Stats(ctx context.Context) (Stats, error) {
	// proto.actor futures wait on a timeout, not a context: the context's
	// deadline, when sooner, is that timeout.
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(dl), time.Millisecond))
	}
	if err := ctx.Err(); err != nil {
		return Stats{}, fmt.Errorf("actors: stats: %w", err)
	}
	res, err := r.request(&statsRequest{}, timeout)
	if err != nil {
		return Stats{}, fmt.Errorf("actors: stats: %w", err)
	}
	return res.(Stats), nil
}

// NewRunID returns a fresh run id.
func NewRunID() string { return "run_" + uuid.Must(uuid.NewV7()).String() }

// storeCtx bounds a store write that must happen even when the run's context is
// cancelled (recording a cancellation, a failure, a state change).
func (r *Runtime) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.storeLife, r.cfg.StoreTimeout)
}

// goWorker runs fn in a goroutine Stop waits for.
func (r *Runtime) goWorker(fn func()) {
	r.workers.add()
	go func() {
		defer r.workers.done()
		fn()
	}()
}

// workerGroup is a WaitGroup whose wait honours a context and which may be
// added to while someone waits.
type workerGroup struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0; nil while n is 0
}

func (g *workerGroup) add() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == 0 {
		g.zero = make(chan struct{})
	}
	g.n++
}

func (g *workerGroup) done() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.n == 0 {
		close(g.zero)
		g.zero = nil
	}
}

func (g *workerGroup) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

func (g *workerGroup) wait(ctx context.Context) error {
	g.mu.Lock()
	zero := g.zero
	g.mu.Unlock()
	if zero == nil {
		return nil
	}
	select {
	case <-zero:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

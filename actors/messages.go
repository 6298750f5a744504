package actors

import (
	"time"

	"github.com/openintern/openintern/store"
)

// agentKey names an agent across scopes.
type agentKey struct {
	scope   store.Scope
	agentID string
}

// Messages the supervisor receives.
type (
	// wakeAgent: the agent has mail; activate it if needed and tell it.
	wakeAgent struct{ key agentKey }
	// notifyAgent: deliver msg to the agent only if it is active.
	notifyAgent struct {
		key agentKey
		msg any
	}
	// forwardToAgent: deliver msg to the agent, activating it if needed.
	forwardToAgent struct {
		key agentKey
		msg any
	}
	// acquireSlot: an agent wants to run; the supervisor answers slotGranted when its turn comes
	// (FIFO within the agent's scope, round-robin between scopes).
	acquireSlot struct{}
	// releaseSlot: an agent finished running.
	releaseSlot struct{}
	// idleNotice: an agent has been idle for the idle timeout and has seen wakesSeen wakes.
	idleNotice struct {
		key       agentKey
		wakesSeen uint64
	}
	// agentTerminated: the agent was deleted; stop its actor.
	agentTerminated struct {
		key       agentKey
		wakesSeen uint64
	}
	// statsRequest asks for the supervisor's counters; answered with Stats.
	statsRequest struct{}
	// groupRunChanged: a group run started, a member's run ended, or a cancel
	// was asked; the group's actor (activated if needed) looks at the run again.
	groupRunChanged struct {
		key   groupKey
		runID string
	}
	// drainAll: the node drains; every agent and group hands its work back.
	drainAll struct{}
	// groupIdle: a group actor has no active run and has seen `seen` notices.
	groupIdle struct {
		key  groupKey
		seen uint64
	}
)

// Messages a group actor receives.
type (
	// reconcileGroupRun: advance the run as far as its members allow.
	reconcileGroupRun struct{ runID string }
	// groupReconciled: a worker advanced the run; done when it has ended, err
	// when it must be tried again.
	groupReconciled struct {
		runID string
		done  bool
		err   error
	}
	// groupRetry: the backoff after a failed reconcile has passed.
	groupRetry struct{ runID string }
)

// Stats are the supervisor's counters.
type Stats struct {
	ActiveAgents  int `json:"active_agents"`  // activated actors
	RunningAgents int `json:"running_agents"` // holding a run slot
	WaitingAgents int `json:"waiting_agents"` // queued for a slot
	WaitingScopes int `json:"waiting_scopes"` // scopes with agents queued for a slot
	ActiveGroups  int `json:"active_groups"`  // group actors orchestrating runs
}

// Messages an agent actor receives.
type (
	// agentWake: check the inbox.
	agentWake struct{}
	// slotGranted: the agent may run now.
	slotGranted struct{}
	// pauseAgent / resumeAgent change the agent's state; answered with stateReply.
	pauseAgent  struct{}
	resumeAgent struct{}
	// cancelRun stops the run at once if it is the agent's current one.
	cancelRun struct{ runID string }
	// runClaimed: the worker claimed a run (sent before it executes).
	runClaimed struct{ runID string }
	// turnDone: the worker finished one claim-and-execute cycle.
	turnDone struct{ outcome turnOutcome }
	// retryAfterError: the backoff after an error has passed.
	retryAfterError struct{}
	// goIdle: the inbox has stayed empty for idleGrace since generation gen.
	goIdle struct{ gen uint64 }
	// agentChanged: the agent's row was updated or deleted; drop the cached copy.
	agentChanged struct{}
	// agentDeleted: the agent's row is gone; the actor terminates.
	agentDeleted struct{}
	// drainNow (agents and groups): stop at the next step boundary, release
	// the lease and passivate.
	drainNow struct{}
	// leaseLost (agents and groups): a renewal found the lease taken by
	// another node, or a write was fenced; stop the work at once.
	leaseLost struct{ lease store.Lease }
)

// idleGrace is how long an agent whose inbox emptied stays running before it
// goes idle.
const idleGrace = 200 * time.Millisecond

type stateReply struct {
	state string
	err   error
}

// turnOutcome is how one worker cycle ended.
type turnOutcome struct {
	runID    string
	agent    *store.Agent // the agent row the turn used, for the actor to cache
	agentGen uint64
	noWork   bool // the inbox was empty
	// alone: the run's message was the only unread one when claimed
	// (store.Claim.Alone): without a wake since, there is nothing to claim.
	alone     bool
	suspended bool // stopped at a step boundary (pause or shutdown); the run stays running
	// fenced: a write was refused because another node owns the agent now;
	// the run stays running for it, and this node drops the lease.
	fenced bool
	err    error // infrastructure failure: the agent goes to error and retries
	// llmFailure: the run failed because the LLM did (after the provider's own
	// retries); the agent goes to error and backs off before the next run.
	llmFailure *store.RunError
}

package actors

import (
	"context"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// Memory is the long-term memory the step loop consults (memory.AgentMemory).
// It is an interface so the runtime's tests and the daemon choose it; a nil
// Config.Memory turns recall off.
type Memory interface {
	// Recall returns the few memories most relevant to query.
	Recall(ctx context.Context, scope store.Scope, agentID, query string) ([]Recalled, error)
	// CorePrompt renders the agent's core memory blocks for the system prompt.
	CorePrompt(ctx context.Context, scope store.Scope, agentID string) (string, error)
	// CorePromptOf is CorePrompt of blocks already read (store.Claim.CoreBlocks).
	CorePromptOf(blocks []store.CoreBlock) string
	// RememberRun hands over a run that completed with RunResult.Remember,
	// so its episodic summary can be written without reading the run back.
	// The store holds the run for its summary (RunStore.PendingSummaries)
	// until the summary is written, so an implementation may drop what it
	// cannot take at once and catch up from the store. It must not block.
	RememberRun(run store.Run)
}

// Recalled is one memory recalled into a turn's context.
type Recalled = memory.Recalled

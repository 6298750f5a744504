package actors

import (
	"context"

	"github.com/openintern/openintern/store"
)

// Memory is the long-term memory the step loop consults. It is an interface
// so actors does not depend on the memory stores; the daemon passes an
// adapter over memory.Service. A nil Config.Memory turns recall off.
type Memory interface {
	// Recall returns the few memories most relevant to query.
	Recall(ctx context.Context, scope store.Scope, agentID, query string) ([]Recalled, error)
	// CorePrompt renders the agent's core memory blocks for the system prompt.
	CorePrompt(ctx context.Context, scope store.Scope, agentID string) (string, error)
	// RememberRun records an episodic summary of a finished run. It must not
	// block: implementations queue the write and drop it when saturated.
	RememberRun(scope store.Scope, agentID, runID, input, output string)
}

// Recalled is one memory recalled into a turn's context.
type Recalled struct {
	ID      string  `json:"id"`
	Type    string  `json:"type"`
	Snippet string  `json:"snippet"`
	Score   float64 `json:"score"`
}

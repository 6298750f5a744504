package daemon

import (
	"context"
	"errors"
	"log/slog"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// eventRecorder stores events and then publishes them, like a step commit.
type eventRecorder struct {
	st  store.EventStore
	bus events.Bus
}

func (r eventRecorder) RecordEvents(ctx context.Context, evs []store.Event) error {
	_, err := events.Recorder{Bus: r.bus}.Stored(r.st.AppendEvents(ctx, evs))
	return err
}

// orchestratorBoard adapts memory.Blackboard to actors.Blackboard.
type orchestratorBoard struct {
	bb     *memory.Blackboard
	logger *slog.Logger
}

var _ actors.Blackboard = orchestratorBoard{}

// Post copies a proposal or decision to the group's blackboard. A scope at
// its memory quota stays there until someone deletes memories, so the group
// run goes on without the copy (its events and checkpoint hold the text)
// rather than retrying until then.
func (o orchestratorBoard) Post(ctx context.Context, scope store.Scope, groupID string, e actors.BoardEntry) error {
	_, _, err := o.bb.Post(ctx, scope, groupID, memory.Post{ID: e.ID, AgentID: e.AgentID, RunID: e.RunID, Kind: e.Kind, Text: e.Text})
	if errors.Is(err, store.ErrQuotaExceeded) {
		o.logger.Warn("group run: blackboard entry not stored: the scope's memory quota is reached",
			"group", groupID, "kind", e.Kind, "run_id", e.RunID, "err", err)
		return nil
	}
	return err
}

func (o orchestratorBoard) Digest(ctx context.Context, scope store.Scope, groupID string, limit int) (string, error) {
	return o.bb.Digest(ctx, scope, groupID, limit)
}

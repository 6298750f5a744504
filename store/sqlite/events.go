package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/openintern/openintern/store"
)

// ListEvents limits: a filter with Limit 0 gets defaultEventLimit; no call
// returns more than maxEventLimit.
const (
	defaultEventLimit = 100
	maxEventLimit     = 1000
)

const eventCols = `id, org_id, user_id, project_id, run_id, agent_id, group_id, step_id, type, ts, payload`

func scanEvent(row scanner) (store.Event, error) {
	var e store.Event
	var ts int64
	var payload sql.NullString
	err := row.Scan(&e.ID, &e.Scope.OrgID, &e.Scope.UserID, &e.Scope.ProjectID, &e.RunID, &e.AgentID,
		&e.GroupID, &e.StepID, &e.Type, &ts, &payload)
	if err != nil {
		return store.Event{}, err
	}
	e.TS = fromMicros(ts)
	if payload.Valid {
		e.Payload = json.RawMessage(payload.String)
	}
	return e, nil
}

func nullJSON(p json.RawMessage) sql.NullString {
	if p == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: string(p), Valid: true}
}

// insertEvents inserts normalised events in order, and reports each id.
func insertEvents(ctx context.Context, tx *sql.Tx, events []store.Event, setID func(i int, id int64)) error {
	if len(events) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO events (org_id, user_id, project_id, run_id, agent_id,
			group_id, step_id, type, ts, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i, e := range events {
		var id int64
		if err := stmt.QueryRowContext(ctx, scopeArgs(e.Scope, e.RunID, e.AgentID, e.GroupID, e.StepID, e.Type,
			micros(e.TS), nullJSON(e.Payload))...).Scan(&id); err != nil {
			return err
		}
		setID(i, id)
	}
	return nil
}

// insertRunEvents inserts events of run runID, as insertEvents does, and
// gives them their RunPrev: the single writer makes the run's newest event,
// read in the same transaction before the inserts, exactly the one before
// the batch (see store.ChainRunPrev).
func insertRunEvents(ctx context.Context, tx *sql.Tx, scope store.Scope, runID string, events []store.Event) error {
	if len(events) == 0 {
		return nil
	}
	var last sql.NullInt64
	// The unary + keeps the read on events_run_idx, as in eventWhere.
	err := tx.QueryRowContext(ctx, `SELECT id FROM events
		WHERE +org_id = ? AND +user_id = ? AND +project_id = ? AND run_id = ? ORDER BY id DESC LIMIT 1`,
		scopeArgs(scope, runID)...).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("last event of the run: %w", err)
	}
	if err := insertEvents(ctx, tx, events, func(i int, id int64) { events[i].ID = id }); err != nil {
		return err
	}
	store.ChainRunPrev(events, runID, last.Int64)
	return nil
}

// AppendEvents stores events in one transaction and returns them with their
// ids and times.
func (s *Store) AppendEvents(ctx context.Context, events []store.Event) ([]store.Event, error) {
	out := make([]store.Event, len(events))
	if len(events) == 0 {
		return out, nil
	}
	ts := s.now()
	for i, e := range events {
		var err error
		if out[i], err = store.NormaliseEvent(e, ts); err != nil {
			return nil, fmt.Errorf("sqlite: append events: %w", err)
		}
	}
	err := s.fencedTx(ctx, func(tx *sql.Tx) error {
		return insertEvents(ctx, tx, out, func(i int, id int64) { out[i].ID = id })
	})
	if err != nil {
		return nil, fail("append events", err)
	}
	return out, nil
}

// ListEvents returns up to filter.Limit events of the scope after
// filter.AfterID in id order, and how many match the filter in all.
func (s *Store) ListEvents(ctx context.Context, scope store.Scope, filter store.EventFilter) ([]store.Event, int, error) {
	var total int
	var events []store.Event
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		if !filter.NoTotal {
			cond, args := eventWhere(scope, filter)
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE `+cond, args...).Scan(&total); err != nil {
				return err
			}
		}
		var err error
		events, err = eventPage(ctx, tx, scope, filter)
		return err
	})
	if err != nil {
		return nil, 0, fail("list events", err)
	}
	return events, total, nil
}

// eventPage reads up to filter.Limit events of the scope after
// filter.AfterID in id order.
func eventPage(ctx context.Context, tx *sql.Tx, scope store.Scope, filter store.EventFilter) ([]store.Event, error) {
	limit := filter.Limit
	if limit <= 0 {
		limit = defaultEventLimit
	}
	if limit > maxEventLimit {
		limit = maxEventLimit
	}
	cond, args := eventWhere(scope, filter)
	events := []store.Event{}
	err := queryRows(ctx, tx, `SELECT `+eventCols+` FROM events WHERE `+cond+` AND id > ? ORDER BY id LIMIT ?`,
		append(args, filter.AfterID, limit), func(rows *sql.Rows) error {
			e, err := scanEvent(rows)
			events = append(events, e)
			return err
		})
	return events, err
}

// RunWithEvents returns the run and its events after filter.AfterID, read
// in one read transaction: a finished run has its terminal event, stored in
// the same transaction as the status, among the events.
func (s *Store) RunWithEvents(ctx context.Context, scope store.Scope, runID string, filter store.EventFilter) (store.Run, []store.Event, error) {
	filter.RunID = runID
	var run store.Run
	var events []store.Event
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		if run, err = getRun(ctx, tx, scope, runID); err != nil {
			return err
		}
		events, err = eventPage(ctx, tx, scope, filter)
		return err
	})
	if err != nil {
		return store.Run{}, nil, fail("run with events", err)
	}
	return run, events, nil
}

// eventWhere is the condition ListEvents and LatestEventID share.
func eventWhere(scope store.Scope, filter store.EventFilter) (string, []any) {
	cond := scopeCond
	args := scopeArgs(scope)
	if filter.RunID != "" {
		// The unary + keeps the scope's columns out of index choice: with
		// three equalities, SQLite preferred events_scope_idx and filtered
		// on run_id, so a run stream's read cost O(the scope's events) and
		// a turn's latency grew with every turn before it.
		cond = `+org_id = ? AND +user_id = ? AND +project_id = ? AND run_id = ?`
		args = append(args, filter.RunID)
	}
	if filter.AgentID != "" {
		cond += " AND agent_id = ?"
		args = append(args, filter.AgentID)
	}
	if filter.GroupID != "" {
		cond += " AND group_id = ?"
		args = append(args, filter.GroupID)
	}
	if len(filter.Types) > 0 {
		cond += " AND type IN (?" + strings.Repeat(", ?", len(filter.Types)-1) + ")"
		for _, t := range filter.Types {
			args = append(args, t)
		}
	}
	return cond, args
}

// LatestEventID returns the id of the newest event the filter selects, 0 when none.
func (s *Store) LatestEventID(ctx context.Context, scope store.Scope, filter store.EventFilter) (int64, error) {
	cond, args := eventWhere(scope, filter)
	var id sql.NullInt64
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT max(id) FROM events WHERE `+cond, args...).Scan(&id)
	})
	if err != nil {
		return 0, fail("latest event", err)
	}
	return id.Int64, nil
}

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

// ListEvents limits: a filter with Limit 0 gets defaultEventLimit; no call
// returns more than maxEventLimit.
const (
	defaultEventLimit = 100
	maxEventLimit     = 1000
)

const eventCols = `id, org_id, user_id, project_id, run_id, agent_id, group_id, step_id, type, ts, payload`

func scanEvent(row pgx.Row) (store.Event, error) {
	var e store.Event
	var payload []byte
	err := row.Scan(&e.ID, &e.Scope.OrgID, &e.Scope.UserID, &e.Scope.ProjectID, &e.RunID, &e.AgentID,
		&e.GroupID, &e.StepID, &e.Type, &e.TS, &payload)
	if err != nil {
		return store.Event{}, err
	}
	e.TS = utc(e.TS)
	if payload != nil {
		e.Payload = json.RawMessage(payload)
	}
	return e, nil
}

func payloadArg(p json.RawMessage) *string {
	if p == nil {
		return nil
	}
	s := string(p)
	return &s
}

// eventArrays holds a batch of events column by column, for unnest.
type eventArrays struct {
	org, user, project, run, agent, group, step, typ []string
	ts                                               []time.Time
	payload                                          []*string
}

func newEventArrays(events []store.Event) eventArrays {
	n := len(events)
	a := eventArrays{
		org: make([]string, n), user: make([]string, n), project: make([]string, n),
		run: make([]string, n), agent: make([]string, n), group: make([]string, n),
		step: make([]string, n), typ: make([]string, n), ts: make([]time.Time, n),
		payload: make([]*string, n),
	}
	for i, e := range events {
		a.org[i], a.user[i], a.project[i] = e.Scope.OrgID, e.Scope.UserID, e.Scope.ProjectID
		a.run[i], a.agent[i], a.group[i], a.step[i], a.typ[i] = e.RunID, e.AgentID, e.GroupID, e.StepID, e.Type
		a.ts[i], a.payload[i] = e.TS, payloadArg(e.Payload)
	}
	return a
}

// args returns the arrays as query arguments, starting at parameter first.
func (a eventArrays) args() []any {
	return []any{a.org, a.user, a.project, a.run, a.agent, a.group, a.step, a.typ, a.ts, a.payload}
}

// unnestEvents is the FROM item of a batch of events given as arrays from
// parameter $n on, with ord numbering them in the caller's order. Identity
// values are drawn in the order rows are inserted, so inserting
// "ORDER BY ord" gives the batch increasing ids in the caller's order.
func unnestEvents(n int) string {
	p := func(i int) string { return fmt.Sprintf("$%d", n+i) }
	return `unnest(` + p(0) + `::text[], ` + p(1) + `::text[], ` + p(2) + `::text[], ` + p(3) + `::text[], ` +
		p(4) + `::text[], ` + p(5) + `::text[], ` + p(6) + `::text[], ` + p(7) + `::text[], ` +
		p(8) + `::timestamptz[], ` + p(9) + `::text[])
		WITH ORDINALITY AS u(org_id, user_id, project_id, run_id, agent_id, group_id, step_id, type, ts, payload, ord)`
}

// assignIDs gives events the ids the database returned, in increasing order.
func assignIDs(events []store.Event, ids []int64) error {
	if len(ids) != len(events) {
		return fmt.Errorf("stored %d events of %d", len(ids), len(events))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			return errors.New("event ids were not returned in increasing order")
		}
	}
	for i := range events {
		events[i].ID = ids[i]
	}
	return nil
}

// AppendEvents stores events in one statement and returns them with their
// ids and times.
func (s *Store) AppendEvents(ctx context.Context, events []store.Event) ([]store.Event, error) {
	if len(events) == 0 {
		return []store.Event{}, nil
	}
	out := make([]store.Event, len(events))
	ts := s.now()
	for i, e := range events {
		var err error
		if out[i], err = store.NormaliseEvent(e, ts); err != nil {
			return nil, fmt.Errorf("postgres: append events: %w", err)
		}
	}
	var ids []int64
	err := s.queryRowWithEvents(ctx, false, eventLockKeys(out), `WITH ins AS (
			INSERT INTO events (org_id, user_id, project_id, run_id, agent_id, group_id, step_id, type, ts, payload)
			SELECT org_id, user_id, project_id, run_id, agent_id, group_id, step_id, type, ts, payload::json
			FROM `+unnestEvents(1)+` ORDER BY ord
			RETURNING id)
		SELECT ARRAY(SELECT id FROM ins ORDER BY id)`, newEventArrays(out).args()...).Scan(&ids)
	if err == nil {
		err = assignIDs(out, ids)
	}
	if err != nil {
		return nil, s.fail(ctx, "append events", err)
	}
	return out, nil
}

// eventPage is the read of ListEvents' page: up to filter.Limit events of
// the scope after filter.AfterID in id order. cond and args are the filter's
// condition without the cursor, for the count.
func eventPage(scope store.Scope, filter store.EventFilter) (page string, pageArgs []any, cond string, args []any) {
	limit := filter.Limit
	if limit <= 0 {
		limit = defaultEventLimit
	}
	if limit > maxEventLimit {
		limit = maxEventLimit
	}
	cond, args = eventWhere(scope, filter)
	pageArgs = append(append([]any{}, args...), filter.AfterID, limit)
	page = fmt.Sprintf(`SELECT %s FROM events WHERE %s AND id > $%d ORDER BY id LIMIT $%d`,
		eventCols, cond, len(args)+1, len(args)+2)
	return page, pageArgs, cond, args
}

func collectEvents(rows pgx.Rows) ([]store.Event, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Event, error) { return scanEvent(row) })
}

// ListEvents returns up to filter.Limit events of the scope after
// filter.AfterID in id order, and how many match the filter in all.
func (s *Store) ListEvents(ctx context.Context, scope store.Scope, filter store.EventFilter) ([]store.Event, int, error) {
	page, pageArgs, cond, args := eventPage(scope, filter)
	if filter.NoTotal {
		rows, err := s.pool.Query(ctx, page, pageArgs...)
		if err != nil {
			return nil, 0, s.fail(ctx, "list events", err)
		}
		events, err := collectEvents(rows)
		if err != nil {
			return nil, 0, s.fail(ctx, "list events", err)
		}
		return events, 0, nil
	}
	// The count and the page read one snapshot, so a run that is still
	// writing events cannot make the total disagree with the pages; the
	// transaction rides in the same round trip as the queries.
	b := &pgx.Batch{}
	b.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`)
	b.Queue(`SELECT count(*) FROM events WHERE `+cond, args...)
	b.Queue(page, pageArgs...)
	b.Queue(`COMMIT`)
	var total int
	events := []store.Event{}
	err := func() error {
		br := s.pool.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return err
		}
		if err := br.QueryRow().Scan(&total); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		events, err = collectEvents(rows)
		if err != nil {
			return err
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		return br.Close()
	}()
	if err != nil {
		return nil, 0, s.fail(ctx, "list events", err)
	}
	return events, total, nil
}

// RunWithEvents returns the run and its events after filter.AfterID: the
// run's read (GetRun's) and the events' (ListEvents' page, on
// events_run_idx) in one pipelined batch, so one round trip. The run is read
// first: each statement of the batch sees what was committed when it
// started, so a run found finished has its terminal event, stored in the
// same transaction as the status, among the events.
func (s *Store) RunWithEvents(ctx context.Context, scope store.Scope, runID string, filter store.EventFilter) (store.Run, []store.Event, error) {
	filter.RunID, filter.NoTotal = runID, true
	page, pageArgs, _, _ := eventPage(scope, filter)
	b := &pgx.Batch{}
	b.Queue(runByKey, scope.OrgID, scope.UserID, scope.ProjectID, runID)
	b.Queue(page, pageArgs...)
	var run store.Run
	var events []store.Event
	err := func() error {
		br := s.pool.SendBatch(ctx, b)
		defer br.Close()
		var err error
		if run, err = scanRun(br.QueryRow()); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		if events, err = collectEvents(rows); err != nil {
			return err
		}
		return br.Close()
	}()
	if err != nil {
		return store.Run{}, nil, s.fail(ctx, "run with events", err)
	}
	return run, events, nil
}

// eventWhere is the condition ListEvents and LatestEventID share.
func eventWhere(scope store.Scope, filter store.EventFilter) (string, []any) {
	where := []string{"org_id = $1", "user_id = $2", "project_id = $3"}
	if filter.RunID != "" {
		// A run's events are found by events_run_idx alone. With the scope
		// written as plain equalities, stale statistics (a table that grew
		// since its last analyze) or a generic plan made the planner walk
		// the scope's index from the cursor and filter on run_id: a run
		// stream's read then cost O(the scope's events), and a turn's
		// latency grew with every turn before it. IS NOT DISTINCT FROM is
		// the same check on these NOT NULL columns, and no index serves it.
		where = []string{"(org_id, user_id, project_id) IS NOT DISTINCT FROM ($1::text, $2::text, $3::text)"}
	}
	args := []any{scope.OrgID, scope.UserID, scope.ProjectID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if filter.RunID != "" {
		add("run_id = $%d", filter.RunID)
	}
	if filter.AgentID != "" {
		add("agent_id = $%d", filter.AgentID)
	}
	if filter.GroupID != "" {
		add("group_id = $%d", filter.GroupID)
	}
	if len(filter.Types) > 0 {
		add("type = ANY($%d::text[])", filter.Types)
	}
	cond := strings.Join(where, " AND ")
	return cond, args
}

// LatestEventID returns the id of the newest event the filter selects, 0 when none.
func (s *Store) LatestEventID(ctx context.Context, scope store.Scope, filter store.EventFilter) (int64, error) {
	cond, args := eventWhere(scope, filter)
	var id *int64
	if err := s.pool.QueryRow(ctx, `SELECT max(id) FROM events WHERE `+cond, args...).Scan(&id); err != nil {
		return 0, s.fail(ctx, "latest event", err)
	}
	if id == nil {
		return 0, nil
	}
	return *id, nil
}

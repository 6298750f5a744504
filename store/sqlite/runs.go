package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/openintern/openintern/store"
)

const runCols = `org_id, user_id, project_id, run_id, agent_id, session_key, group_id, parent_run_id, role_id,
	input, status, output, error, steps, usage, cancel_requested, created_at, started_at, ended_at`

func scanRun(row scanner) (store.Run, error) {
	var r store.Run
	var runErr sql.NullString
	var usage string
	var created int64
	var started, ended sql.NullInt64
	err := row.Scan(&r.Scope.OrgID, &r.Scope.UserID, &r.Scope.ProjectID, &r.ID, &r.AgentID, &r.SessionKey,
		&r.GroupID, &r.ParentRunID, &r.RoleID, &r.Input, &r.Status, &r.Output, &runErr, &r.Steps, &usage, &r.CancelRequested,
		&created, &started, &ended)
	if err != nil {
		return store.Run{}, err
	}
	r.CreatedAt = fromMicros(created)
	r.StartedAt, r.EndedAt = fromNullMicros(started), fromNullMicros(ended)
	if runErr.Valid {
		r.Error = &store.RunError{}
		if err := json.Unmarshal([]byte(runErr.String), r.Error); err != nil {
			return store.Run{}, fmt.Errorf("decode run error: %w", err)
		}
	}
	if usage != "" {
		if err := json.Unmarshal([]byte(usage), &r.Usage); err != nil {
			return store.Run{}, fmt.Errorf("decode run usage: %w", err)
		}
	}
	return r, nil
}

type queryRower interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

func getRun(ctx context.Context, db queryRower, scope store.Scope, runID string) (store.Run, error) {
	return scanRun(db.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE `+scopeCond+` AND run_id = ?`,
		scopeArgs(scope, runID)...))
}

// CreateRun stores a pending run, its inbox message (kind "run") and
// nr.Events in one transaction; ErrConflict, with nothing stored, when the
// run id or message id is taken.
func (s *Store) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, store.Message, error) {
	if err := store.CheckScope(nr.Scope); err != nil {
		return store.Run{}, store.Message{}, fmt.Errorf("sqlite: create run: %w", err)
	}
	if nr.RunID == "" || nr.MessageID == "" || nr.AgentID == "" {
		return store.Run{}, store.Message{}, errors.New("sqlite: create run: a run needs a run id, a message id and an agent id")
	}
	events, err := store.RunEvents(nr.Scope, nr.RunID, nr.Events, s.now())
	if err != nil {
		return store.Run{}, store.Message{}, fmt.Errorf("sqlite: create run: %w", err)
	}
	store.FillFromRun(events, nr.AgentID, nr.GroupID)
	if nr.Audit != nil {
		if err := store.CheckAuditRecords([]store.AuditRecord{*nr.Audit}); err != nil {
			return store.Run{}, store.Message{}, fmt.Errorf("sqlite: create run: %w", err)
		}
	}
	ts := s.now()
	run := store.Run{
		Scope: nr.Scope, ID: nr.RunID, AgentID: nr.AgentID, SessionKey: nr.SessionKey, GroupID: nr.GroupID,
		ParentRunID: nr.ParentRunID, RoleID: nr.RoleID, Input: nr.Input, Status: store.RunPending, CreatedAt: ts,
	}
	msg := store.Message{
		Scope: nr.Scope, ID: nr.MessageID, AgentID: nr.AgentID, SessionKey: nr.SessionKey, GroupID: nr.GroupID,
		Kind: store.MessageKindRun, SenderType: nr.SenderType, SenderID: nr.SenderID, Content: nr.Input,
		RunID: nr.RunID, Status: store.MessageUnread, CreatedAt: ts,
	}
	err = s.fencedTx(ctx, func(tx *sql.Tx) error {
		if nr.RequireAgent {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM agents WHERE `+scopeCond+` AND agent_id = ?`,
				scopeArgs(nr.Scope, nr.AgentID)...).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("agent %q: %w", nr.AgentID, store.ErrNotFound)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO runs (org_id, user_id, project_id, run_id, agent_id,
				session_key, group_id, parent_run_id, role_id, input, status, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)`,
			scopeArgs(nr.Scope, nr.RunID, nr.AgentID, nr.SessionKey, nr.GroupID, nr.ParentRunID, nr.RoleID,
				nr.Input, micros(ts))...); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `INSERT INTO messages (org_id, user_id, project_id, message_id, agent_id,
				session_key, group_id, kind, sender_type, sender_id, content, run_id, status, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'run', ?, ?, ?, ?, 'unread', ?) RETURNING seq`,
			scopeArgs(nr.Scope, nr.MessageID, nr.AgentID, nr.SessionKey, nr.GroupID, nr.SenderType, nr.SenderID,
				nr.Input, nr.RunID, micros(ts))...).Scan(&msg.Seq); err != nil {
			return err
		}
		if nr.Audit != nil {
			if err := insertAudit(ctx, tx, []store.AuditRecord{*nr.Audit}, ts); err != nil {
				return err
			}
		}
		return insertRunEvents(ctx, tx, nr.Scope, nr.RunID, events)
	})
	if err != nil {
		return store.Run{}, store.Message{}, fail("create run", err)
	}
	return run, msg, nil
}

// GetRun returns one run.
func (s *Store) GetRun(ctx context.Context, scope store.Scope, runID string) (store.Run, error) {
	r, err := getRun(ctx, s.r, scope, runID)
	if err != nil {
		return store.Run{}, fail("get run", err)
	}
	return r, nil
}

// runFilterCond is the condition (and its arguments) on runs that selects
// the scope's runs matching filter.
func runFilterCond(scope store.Scope, filter store.RunFilter) (string, []any, error) {
	cond := scopeCond
	args := scopeArgs(scope)
	add := func(col, v string) {
		if v != "" {
			cond += " AND " + col + " = ?"
			args = append(args, v)
		}
	}
	add("agent_id", filter.AgentID)
	add("session_key", filter.SessionKey)
	add("status", filter.Status)
	add("group_id", filter.GroupID)
	add("parent_run_id", filter.ParentRunID)
	add("role_id", filter.RoleID)
	switch filter.Kind {
	case "":
	case store.RunKindAgent:
		cond += " AND agent_id <> ''"
	case store.RunKindGroup:
		cond += " AND agent_id = ''"
	default:
		return "", nil, fmt.Errorf("unknown run kind %q", filter.Kind)
	}
	return cond, args, nil
}

// ListRuns returns a page of the scope's runs matching filter, newest first,
// and how many match.
func (s *Store) ListRuns(ctx context.Context, scope store.Scope, filter store.RunFilter, page store.Page) ([]store.Run, int, error) {
	limit, offset := store.PageBounds(page)
	cond, args, err := runFilterCond(scope, filter)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: list runs: %w", err)
	}
	var total int
	runs := []store.Run{}
	err = s.readTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM runs WHERE `+cond, args...).Scan(&total); err != nil {
			return err
		}
		return queryRows(ctx, tx, `SELECT `+runCols+` FROM runs WHERE `+cond+`
			ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?`, append(append([]any{}, args...), limit, offset),
			func(rows *sql.Rows) error {
				r, err := scanRun(rows)
				runs = append(runs, r)
				return err
			})
	})
	if err != nil {
		return nil, 0, fail("list runs", err)
	}
	return runs, total, nil
}

func getCheckpoint(ctx context.Context, db queryRower, scope store.Scope, runID string) (*store.Checkpoint, error) {
	var cp store.Checkpoint
	var state sql.NullString
	var updated int64
	err := db.QueryRowContext(ctx, `SELECT run_id, step, state, updated_at FROM checkpoints
		WHERE `+scopeCond+` AND run_id = ?`, scopeArgs(scope, runID)...).Scan(&cp.RunID, &cp.Step, &state, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cp.UpdatedAt = fromMicros(updated)
	if state.Valid {
		cp.State = json.RawMessage(state.String)
	}
	return &cp, nil
}

// ClaimNextRun gives the agent its next unit of work in one write
// transaction; the single writer serialises claims. It reads no extras:
// here they cost no round trip, and read in the claim they would hold the
// single writer longer (the turn reads them from a reader).
func (s *Store) ClaimNextRun(ctx context.Context, scope store.Scope, agentID string, newRunID string, _ ...store.ClaimExtras) (store.Claim, error) {
	if newRunID == "" {
		return store.Claim{}, errors.New("sqlite: claim next run: new run id is empty")
	}
	if agentID == "" { // group runs have agent ""; no agent claims them
		return store.Claim{}, errors.New("sqlite: claim next run: agent id is empty")
	}
	var claim store.Claim
	err := s.fencedTx(ctx, func(tx *sql.Tx) error {
		// 1. A run left running is resumed.
		r, err := scanRun(tx.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs
			WHERE `+scopeCond+` AND agent_id = ? AND status = 'running'`, scopeArgs(scope, agentID)...))
		if err == nil {
			msgs, err := queryMessages(ctx, tx, `SELECT `+messageCols+` FROM messages
				WHERE `+scopeCond+` AND run_id = ? ORDER BY seq`, scopeArgs(scope, r.ID))
			if err != nil {
				return err
			}
			cp, err := getCheckpoint(ctx, tx, scope, r.ID)
			if err != nil {
				return err
			}
			claim = store.Claim{Run: r, Messages: msgs, Checkpoint: cp, Resumed: true}
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// A run waiting for an approval holds the agent's queue: nothing
		// else is claimed until it is decided.
		var waiting bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM runs
			WHERE `+scopeCond+` AND agent_id = ? AND status = 'waiting_approval')`, scopeArgs(scope, agentID)...).Scan(&waiting); err != nil {
			return err
		}
		if waiting {
			return store.ErrNoWork
		}
		ts := s.now()
		for {
			// The batch ends at the next run message, or at the next message
			// of the session in another group.
			var boundary sql.NullInt64
			oldest, err := scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageCols+`,
					(SELECT min(n.seq) FROM messages n
					 WHERE n.org_id = m.org_id AND n.user_id = m.user_id AND n.project_id = m.project_id
					   AND n.agent_id = m.agent_id AND n.status = 'unread' AND n.seq > m.seq
					   AND (n.kind = 'run' OR (n.session_key = m.session_key AND n.group_id <> m.group_id)))
				FROM messages m
				WHERE `+scopeCond+` AND agent_id = ? AND status = 'unread'
				ORDER BY seq LIMIT 1`, scopeArgs(scope, agentID)...), &boundary)
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrNoWork
			}
			if err != nil {
				return err
			}
			// 2. The oldest message is a pending run's: start that run.
			if oldest.RunID != "" {
				res, err := tx.ExecContext(ctx, `UPDATE runs SET status = 'running', started_at = ?
					WHERE `+scopeCond+` AND run_id = ? AND status = 'pending'`,
					append([]any{micros(ts)}, scopeArgs(scope, oldest.RunID)...)...)
				if err != nil {
					return err
				}
				if n, err := res.RowsAffected(); err != nil {
					return err
				} else if n == 1 {
					r, err := getRun(ctx, tx, scope, oldest.RunID)
					if err != nil {
						return err
					}
					var unread int
					if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM messages
						WHERE `+scopeCond+` AND agent_id = ? AND status = 'unread' LIMIT 2)`,
						scopeArgs(scope, agentID)...).Scan(&unread); err != nil {
						return err
					}
					claim = store.Claim{Run: r, Messages: []store.Message{oldest}, Alone: unread == 1}
					return nil
				}
				// Its run is not pending (ended without reading it): the
				// message is done with. Take the next one.
				s.logger.Warn("sqlite: claim: unread message of a run that is not pending; marking it read",
					"run_id", oldest.RunID, "message_id", oldest.ID)
				if _, err := tx.ExecContext(ctx, `UPDATE messages SET status = 'read', read_at = ?
					WHERE `+scopeCond+` AND agent_id = ? AND seq = ?`,
					append([]any{micros(ts)}, scopeArgs(scope, agentID, oldest.Seq)...)...); err != nil {
					return err
				}
				continue
			}
			// 3. A batch of plain messages of the oldest one's session (and group) becomes a new run.
			end := int64(math.MaxInt64)
			if boundary.Valid {
				end = boundary.Int64
			}
			if _, err := tx.ExecContext(ctx, `UPDATE messages SET run_id = ?
				WHERE `+scopeCond+` AND agent_id = ? AND status = 'unread' AND run_id IS NULL
				  AND session_key = ? AND group_id = ? AND seq >= ? AND seq < ?`,
				append([]any{newRunID}, scopeArgs(scope, agentID, oldest.SessionKey, oldest.GroupID, oldest.Seq, end)...)...); err != nil {
				return err
			}
			msgs, err := queryMessages(ctx, tx, `SELECT `+messageCols+` FROM messages
				WHERE `+scopeCond+` AND run_id = ? ORDER BY seq`, scopeArgs(scope, newRunID))
			if err != nil {
				return err
			}
			contents := make([]string, len(msgs))
			for i, m := range msgs {
				contents[i] = m.Content
			}
			run := store.Run{
				Scope: scope, ID: newRunID, AgentID: agentID, SessionKey: oldest.SessionKey, GroupID: oldest.GroupID,
				Input: strings.Join(contents, "\n\n"), Status: store.RunRunning, CreatedAt: ts, StartedAt: &ts,
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO runs (org_id, user_id, project_id, run_id, agent_id,
					session_key, group_id, input, status, created_at, started_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)`,
				scopeArgs(scope, newRunID, agentID, run.SessionKey, run.GroupID, run.Input, micros(ts), micros(ts))...); err != nil {
				return err
			}
			claim = store.Claim{Run: run, Messages: msgs}
			return nil
		}
	})
	if err != nil {
		return store.Claim{}, fail("claim next run", err)
	}
	return claim, nil
}

// SaveStep appends the step's events and, when cp is non-nil, stores the
// checkpoint and the run's step count, in one transaction.
func (s *Store) SaveStep(ctx context.Context, scope store.Scope, runID string, cp *store.Checkpoint, events []store.Event) ([]store.Event, error) {
	out, err := store.RunEvents(scope, runID, events, s.now())
	if err != nil {
		return nil, fmt.Errorf("sqlite: save step: %w", err)
	}
	var state sql.NullString
	if cp != nil && len(cp.State) > 0 {
		if !json.Valid(cp.State) {
			return nil, errors.New("sqlite: save step: checkpoint state is not valid JSON")
		}
		state = nullJSON(cp.State)
	}
	err = s.fencedTx(ctx, func(tx *sql.Tx) error {
		var agentID, groupID string
		if err := tx.QueryRowContext(ctx, `SELECT agent_id, group_id FROM runs WHERE `+scopeCond+` AND run_id = ?`,
			scopeArgs(scope, runID)...).Scan(&agentID, &groupID); err != nil {
			return err
		}
		if cp != nil {
			ts := micros(s.now())
			if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (org_id, user_id, project_id, run_id, step, state, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (org_id, user_id, project_id, run_id) DO UPDATE
					SET step = excluded.step, state = excluded.state, updated_at = excluded.updated_at`,
				scopeArgs(scope, runID, cp.Step, state, ts)...); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE runs SET steps = ? WHERE `+scopeCond+` AND run_id = ?`,
				append([]any{cp.Step}, scopeArgs(scope, runID)...)...); err != nil {
				return err
			}
		}
		store.FillFromRun(out, agentID, groupID)
		return insertRunEvents(ctx, tx, scope, runID, out)
	})
	if err != nil {
		return nil, fail("save step", err)
	}
	return out, nil
}

// FinishRun ends a running run with res, marks its messages read, appends
// events and enqueues res.Outbox, in one transaction. ErrConflict, with
// nothing stored, when the run is not running.
func (s *Store) FinishRun(ctx context.Context, scope store.Scope, runID string, res store.RunResult, events []store.Event) ([]store.Event, error) {
	if !store.RunFinished(res.Status) {
		return nil, fmt.Errorf("sqlite: finish run: status %q is not a final status", res.Status)
	}
	out, err := store.RunEvents(scope, runID, events, s.now())
	if err != nil {
		return nil, fmt.Errorf("sqlite: finish run: %w", err)
	}
	var runErr sql.NullString
	if res.Error != nil {
		b, err := json.Marshal(res.Error)
		if err != nil {
			return nil, fmt.Errorf("sqlite: finish run: %w", err)
		}
		runErr = sql.NullString{String: string(b), Valid: true}
	}
	usage, err := json.Marshal(res.Usage)
	if err != nil {
		return nil, fmt.Errorf("sqlite: finish run: %w", err)
	}
	outbox, err := outboxMessages(scope, res.Outbox, s.now())
	if err != nil {
		return nil, fmt.Errorf("sqlite: finish run: %w", err)
	}
	err = s.fencedTx(ctx, func(tx *sql.Tx) error {
		var agentID, groupID, status string
		if err := tx.QueryRowContext(ctx, `SELECT agent_id, group_id, status FROM runs WHERE `+scopeCond+` AND run_id = ?`,
			scopeArgs(scope, runID)...).Scan(&agentID, &groupID, &status); err != nil {
			return err
		}
		if status != store.RunRunning {
			return fmt.Errorf("run is %s, not running: %w", status, store.ErrConflict)
		}
		ts := micros(s.now())
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?, output = ?, error = ?, steps = ?, usage = ?, ended_at = ?
			WHERE `+scopeCond+` AND run_id = ?`,
			append([]any{res.Status, res.Output, runErr, res.Steps, string(usage), ts}, scopeArgs(scope, runID)...)...); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET status = 'read', read_at = ?
			WHERE `+scopeCond+` AND run_id = ? AND status = 'unread'`,
			append([]any{ts}, scopeArgs(scope, runID)...)...); err != nil {
			return err
		}
		if err := insertMessages(ctx, tx, outbox); err != nil {
			return err
		}
		if res.Remember && res.Status == store.RunCompleted && agentID != "" {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO run_summary_queue (org_id, user_id, project_id, run_id) VALUES (?, ?, ?, ?)`,
				scopeArgs(scope, runID)...); err != nil {
				return err
			}
		}
		store.FillFromRun(out, agentID, groupID)
		return insertRunEvents(ctx, tx, scope, runID, out)
	})
	if err != nil {
		return nil, fail("finish run", err)
	}
	return out, nil
}

// PendingSummaries returns runs queued for a summary (see store.RunStore).
// A queued run that no longer exists comes back with only its Scope and ID.
func (s *Store) PendingSummaries(ctx context.Context, limit int) ([]store.Run, error) {
	var out []store.Run
	err := queryRows(ctx, s.r, `SELECT q.org_id, q.user_id, q.project_id, q.run_id, coalesce(r.agent_id, ''),
			coalesce(r.session_key, ''), coalesce(r.input, ''), coalesce(r.output, ''), coalesce(r.status, ''), r.ended_at
		FROM run_summary_queue q LEFT JOIN runs r
			ON r.org_id = q.org_id AND r.user_id = q.user_id AND r.project_id = q.project_id AND r.run_id = q.run_id
		ORDER BY q.run_id LIMIT ?`, []any{limit}, func(rows *sql.Rows) error {
		var r store.Run
		var ended sql.NullInt64
		if err := rows.Scan(&r.Scope.OrgID, &r.Scope.UserID, &r.Scope.ProjectID, &r.ID, &r.AgentID, &r.SessionKey, &r.Input, &r.Output, &r.Status, &ended); err != nil {
			return err
		}
		r.EndedAt = fromNullMicros(ended)
		out = append(out, r)
		return nil
	})
	return out, fail("pending summaries", err)
}

// SummariesDone takes runs off the summary queue.
func (s *Store) SummariesDone(ctx context.Context, runs []store.Run) error {
	if len(runs) == 0 {
		return nil
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for _, r := range runs {
			if _, err := tx.ExecContext(ctx, `DELETE FROM run_summary_queue WHERE `+scopeCond+` AND run_id = ?`, scopeArgs(r.Scope, r.ID)...); err != nil {
				return err
			}
		}
		return nil
	})
	return fail("summaries done", err)
}

// outboxMessages checks a run's outbox: messages of the run's scope (a zero
// Scope means it), never of another.
func outboxMessages(scope store.Scope, outbox []store.NewMessage, ts time.Time) ([]store.Message, error) {
	msgs := make([]store.NewMessage, len(outbox))
	for i, m := range outbox {
		if m.Scope == (store.Scope{}) {
			m.Scope = scope
		}
		if m.Scope != scope {
			return nil, fmt.Errorf("outbox message %s is for another scope", m.ID)
		}
		msgs[i] = m
	}
	out, err := newMessages(msgs, ts)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return out, nil
}

// CancelRun cancels a pending run and marks its message read, or flags a
// running one (CancelRequested), in one transaction. ErrConflict, with the
// run, when it has already ended.
func (s *Store) CancelRun(ctx context.Context, scope store.Scope, runID string) (store.Run, error) {
	var r store.Run
	ended := false
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		if r, err = getRun(ctx, tx, scope, runID); err != nil {
			return err
		}
		if store.RunFinished(r.Status) {
			ended = true
			return nil
		}
		ts := s.now()
		if r.Status == store.RunPending {
			r.Status, r.EndedAt = store.RunCancelled, &ts
			if _, err := tx.ExecContext(ctx, `UPDATE messages SET status = 'read', read_at = ?
				WHERE `+scopeCond+` AND run_id = ? AND status = 'unread'`,
				append([]any{micros(ts)}, scopeArgs(scope, runID)...)...); err != nil {
				return err
			}
		} else {
			r.CancelRequested = true
		}
		if r.Status == store.RunWaitingApproval {
			// Running again, so the agent claims it and ends it cancelled;
			// the call it waited for is denied.
			r.Status = store.RunRunning
			if _, err := tx.ExecContext(ctx, `UPDATE approvals SET status = 'denied', decided_by = 'system',
					decision_reason = 'the run was cancelled', decided_at = ?
				WHERE `+scopeCond+` AND run_id = ? AND status = 'pending'`,
				append([]any{micros(ts)}, scopeArgs(scope, runID)...)...); err != nil {
				return err
			}
		}
		var endedAt sql.NullInt64
		if r.EndedAt != nil {
			endedAt = sql.NullInt64{Int64: micros(*r.EndedAt), Valid: true}
		}
		_, err = tx.ExecContext(ctx, `UPDATE runs SET status = ?, ended_at = ?, cancel_requested = ?
			WHERE `+scopeCond+` AND run_id = ?`,
			append([]any{r.Status, endedAt, r.CancelRequested}, scopeArgs(scope, runID)...)...)
		return err
	})
	if err != nil {
		return store.Run{}, fail("cancel run", err)
	}
	if ended {
		return r, fmt.Errorf("sqlite: cancel run: run is %s: %w", r.Status, store.ErrConflict)
	}
	return r, nil
}

// SessionHistory returns the last limit completed runs of the agent's
// session, oldest first, read from an index of completed runs by session and
// end time, so its cost does not grow with the session.
func (s *Store) SessionHistory(ctx context.Context, scope store.Scope, agentID, sessionKey string, limit int) ([]store.SessionTurn, error) {
	turns := []store.SessionTurn{}
	if limit <= 0 {
		return turns, nil
	}
	err := queryRows(ctx, s.r, `SELECT run_id, input, output FROM runs
		WHERE `+scopeCond+` AND agent_id = ? AND session_key = ? AND status = 'completed'
		ORDER BY ended_at DESC, run_id DESC LIMIT ?`, scopeArgs(scope, agentID, sessionKey, limit),
		func(rows *sql.Rows) error {
			var t store.SessionTurn
			err := rows.Scan(&t.RunID, &t.Input, &t.Output)
			turns = append(turns, t)
			return err
		})
	if err != nil {
		return nil, fail("session history", err)
	}
	for i, j := 0, len(turns)-1; i < j; i, j = i+1, j-1 {
		turns[i], turns[j] = turns[j], turns[i]
	}
	return turns, nil
}

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

const runCols = `org_id, user_id, project_id, run_id, agent_id, session_key, group_id, parent_run_id, role_id,
	input, status, output, error, steps, usage, cancel_requested, created_at, started_at, ended_at`

func scanRun(row pgx.Row) (store.Run, error) {
	var r store.Run
	var runErr, usage []byte
	err := row.Scan(&r.Scope.OrgID, &r.Scope.UserID, &r.Scope.ProjectID, &r.ID, &r.AgentID, &r.SessionKey,
		&r.GroupID, &r.ParentRunID, &r.RoleID, &r.Input, &r.Status, &r.Output, &runErr, &r.Steps, &usage, &r.CancelRequested,
		&r.CreatedAt, &r.StartedAt, &r.EndedAt)
	if err != nil {
		return store.Run{}, err
	}
	r.CreatedAt = utc(r.CreatedAt)
	r.StartedAt, r.EndedAt = utcPtr(r.StartedAt), utcPtr(r.EndedAt)
	if runErr != nil {
		r.Error = &store.RunError{}
		if err := json.Unmarshal(runErr, r.Error); err != nil {
			return store.Run{}, fmt.Errorf("decode run error: %w", err)
		}
	}
	if len(usage) > 0 {
		if err := json.Unmarshal(usage, &r.Usage); err != nil {
			return store.Run{}, fmt.Errorf("decode run usage: %w", err)
		}
	}
	return r, nil
}

// CreateRun stores a pending run, its inbox message (kind "run") and
// nr.Events in one statement; ErrConflict, with nothing stored, when the run
// id or message id is taken.
func (s *Store) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, store.Message, error) {
	if err := store.CheckScope(nr.Scope); err != nil {
		return store.Run{}, store.Message{}, fmt.Errorf("postgres: create run: %w", err)
	}
	if nr.RunID == "" || nr.MessageID == "" || nr.AgentID == "" {
		return store.Run{}, store.Message{}, errors.New("postgres: create run: a run needs a run id, a message id and an agent id")
	}
	events, err := store.RunEvents(nr.Scope, nr.RunID, nr.Events, s.now())
	if err != nil {
		return store.Run{}, store.Message{}, fmt.Errorf("postgres: create run: %w", err)
	}
	store.FillFromRun(events, nr.AgentID, nr.GroupID)
	ts := s.now()
	var seq *int64
	var ids []int64
	var last *int64
	args := append([]any{nr.Scope.OrgID, nr.Scope.UserID, nr.Scope.ProjectID, nr.RunID, nr.AgentID, nr.SessionKey,
		nr.GroupID, nr.Input, ts, nr.MessageID, nr.SenderType, nr.SenderID, nr.ParentRunID, nr.RoleID},
		newEventArrays(events).args()...)
	// The message and the events join the run: without the agent, nothing.
	// The request's audit record joins the run too (store.NewRun.Audit).
	audit := ""
	if a := nr.Audit; a != nil {
		if err := store.CheckAuditRecords([]store.AuditRecord{*a}); err != nil {
			return store.Run{}, store.Message{}, fmt.Errorf("postgres: create run: %w", err)
		}
		at := a.Time
		if at.IsZero() {
			at = ts
		}
		vals := []any{at, a.Scope.OrgID, a.Scope.UserID, a.Scope.ProjectID, a.Actor, a.ActorName, a.Via,
			a.Action, a.Target, a.ArgsHash, a.Outcome, a.RequestID, a.Detail}
		params := make([]string, len(vals))
		for i := range vals {
			params[i] = "$" + strconv.Itoa(len(args)+1+i)
		}
		params[0] += "::timestamptz"
		args = append(args, vals...)
		audit = `,
		au AS (
			INSERT INTO audit_log (created_at, org_id, user_id, project_id, actor, actor_name, via, action,
				target, args_hash, outcome, request_id, detail)
			SELECT ` + strings.Join(params, ", ") + ` FROM r)`
	}
	agentExists := ""
	if nr.RequireAgent {
		agentExists = `WHERE EXISTS (SELECT 1 FROM agents
				WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $5)`
	}
	err = s.queryRowWithEvents(ctx, false, eventLockKeys(events), `WITH r AS (
			INSERT INTO runs (org_id, user_id, project_id, run_id, agent_id, session_key, group_id, parent_run_id,
				role_id, input, status, created_at)
			SELECT $1, $2, $3, $4, $5, $6, $7, $13, $14, $8, 'pending', $9::timestamptz `+agentExists+`
			RETURNING run_id, agent_id, group_id),
		m AS (
			INSERT INTO messages (org_id, user_id, project_id, message_id, agent_id, session_key, group_id, kind,
				sender_type, sender_id, content, run_id, status, created_at)
			SELECT $1, $2, $3, $10, $5, $6, $7, 'run', $11, $12, $8, r.run_id, 'unread', $9 FROM r
			RETURNING seq),
		ins AS (`+insertRunEvents(15)+`)`+audit+`
		SELECT (SELECT seq FROM m), ARRAY(SELECT id FROM ins ORDER BY id), `+lastRunEvent,
		args...).Scan(&seq, &ids, &last)
	if err == nil && seq == nil {
		err = fmt.Errorf("agent %q: %w", nr.AgentID, store.ErrNotFound)
	}
	if err == nil {
		err = assignIDs(events, ids)
	}
	if err == nil {
		runPrev(events, nr.RunID, last)
	}
	if err != nil {
		return store.Run{}, store.Message{}, s.fail(ctx, "create run", err)
	}
	run := store.Run{
		Scope: nr.Scope, ID: nr.RunID, AgentID: nr.AgentID, SessionKey: nr.SessionKey, GroupID: nr.GroupID,
		ParentRunID: nr.ParentRunID, RoleID: nr.RoleID, Input: nr.Input, Status: store.RunPending, CreatedAt: ts,
	}
	msg := store.Message{
		Scope: nr.Scope, ID: nr.MessageID, Seq: *seq, AgentID: nr.AgentID, SessionKey: nr.SessionKey, GroupID: nr.GroupID,
		Kind: store.MessageKindRun, SenderType: nr.SenderType, SenderID: nr.SenderID, Content: nr.Input,
		RunID: nr.RunID, Status: store.MessageUnread, CreatedAt: ts,
	}
	return run, msg, nil
}

// runByKey reads the run $4 of the scope $1..$3.
const runByKey = `SELECT ` + runCols + ` FROM runs
	WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $4`

func (s *Store) getRun(ctx context.Context, db dbtx, scope store.Scope, runID string) (store.Run, error) {
	return scanRun(db.QueryRow(ctx, runByKey, scope.OrgID, scope.UserID, scope.ProjectID, runID))
}

// GetRun returns one run.
func (s *Store) GetRun(ctx context.Context, scope store.Scope, runID string) (store.Run, error) {
	r, err := s.getRun(ctx, s.pool, scope, runID)
	if err != nil {
		return store.Run{}, s.fail(ctx, "get run", err)
	}
	return r, nil
}

// runFilterCond is the condition (and its arguments, from $1) on runs that
// selects the scope's runs matching filter.
func runFilterCond(scope store.Scope, filter store.RunFilter) (string, []any, error) {
	where := []string{"org_id = $1", "user_id = $2", "project_id = $3"}
	args := []any{scope.OrgID, scope.UserID, scope.ProjectID}
	add := func(col, v string) {
		if v != "" {
			args = append(args, v)
			where = append(where, fmt.Sprintf("%s = $%d", col, len(args)))
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
		where = append(where, "agent_id <> ''")
	case store.RunKindGroup:
		where = append(where, "agent_id = ''")
	default:
		return "", nil, fmt.Errorf("unknown run kind %q", filter.Kind)
	}
	return strings.Join(where, " AND "), args, nil
}

// ListRuns returns a page of the scope's runs matching filter, newest first,
// and how many match.
func (s *Store) ListRuns(ctx context.Context, scope store.Scope, filter store.RunFilter, page store.Page) ([]store.Run, int, error) {
	limit, offset := store.PageBounds(page)
	cond, args, err := runFilterCond(scope, filter)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: list runs: %w", err)
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT count(*) FROM runs WHERE `+cond, args...)
	b.Queue(fmt.Sprintf(`SELECT %s FROM runs WHERE %s ORDER BY created_at DESC, run_id DESC LIMIT $%d OFFSET $%d`,
		runCols, cond, len(args)+1, len(args)+2), append(append([]any{}, args...), limit, offset)...)
	var total int
	runs := []store.Run{}
	err = func() error {
		br := s.pool.SendBatch(ctx, b)
		defer br.Close()
		if err := br.QueryRow().Scan(&total); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		runs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Run, error) { return scanRun(row) })
		if err != nil {
			return err
		}
		return br.Close()
	}()
	if err != nil {
		return nil, 0, s.fail(ctx, "list runs", err)
	}
	return runs, total, nil
}

// Statements of ClaimNextRun. $1..$4 are the scope and the agent.
const (
	// The row lock keeps a concurrent FinishRun from ending the run between
	// this statement and the next two of the batch.
	claimRunning = `SELECT ` + runCols + ` FROM runs
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND status = 'running'
		FOR UPDATE`
	// A run waiting for an approval holds the agent's queue: nothing else is
	// claimed until it is decided.
	claimWaiting = `SELECT EXISTS (SELECT 1 FROM runs
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND status = 'waiting_approval')`
	claimRunningMessages = `SELECT ` + messageCols + ` FROM messages
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = (
			SELECT run_id FROM runs
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND status = 'running')
		ORDER BY seq`
	claimRunningCheckpoint = `SELECT run_id, step, state, updated_at FROM checkpoints
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = (
			SELECT run_id FROM runs
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND status = 'running')`
	// The oldest unread message, and the seq of the next unread run message,
	// or message of its session in another group, after it (the end of a
	// batch of plain messages).
	claimOldest = `SELECT ` + messageCols + `,
			(SELECT min(n.seq) FROM messages n
			 WHERE n.org_id = $1 AND n.user_id = $2 AND n.project_id = $3 AND n.agent_id = $4
			   AND n.status = 'unread' AND n.seq > m.seq
			   AND (n.kind = 'run' OR (n.session_key = m.session_key AND n.group_id <> m.group_id)))
		FROM messages m
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND status = 'unread'
		ORDER BY seq LIMIT 1`
	claimPending = `UPDATE runs SET status = 'running', started_at = $6
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND run_id = $5 AND status = 'pending'
		RETURNING ` + runCols
	// Takes the plain unread messages of a session and group below a seq
	// into a new running run, whose input is their contents in order.
	claimBatch = `WITH claimed AS (
			UPDATE messages SET run_id = $5
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND status = 'unread'
			  AND run_id IS NULL AND session_key = $6 AND group_id = $10 AND seq >= $7 AND seq < $8
			RETURNING ` + messageCols + `),
		r AS (
			INSERT INTO runs (org_id, user_id, project_id, run_id, agent_id, session_key, group_id, input, status,
				created_at, started_at)
			SELECT $1, $2, $3, $5, $4, $6, $10, string_agg(content, E'\n\n' ORDER BY seq), 'running', $9, $9
			FROM claimed
			RETURNING run_id)
		SELECT ` + messageCols + ` FROM claimed ORDER BY seq`
)

// claimUnreadUpTo2 counts the agent's unread messages, up to 2: one means
// the message claimed is the only one (store.Claim.Alone).
const claimUnreadUpTo2 = `SELECT count(*) FROM (SELECT 1 FROM messages
	WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND status = 'unread' LIMIT 2) u`

// claimPendingFirst starts the run of the agent's oldest unread message when
// that message is a run's, the run is pending and nothing holds the queue
// (a running run, a run waiting for an approval): the common claim, decided
// by the statements before it in the same batch, made here in the same round
// trip. $5 is the start time. Each status has its own NOT EXISTS so that
// each reads its partial index (runs_running_idx, runs_waiting_idx): with
// status IN (…) no index matched and the generic plan read all of the
// scope's runs.
const claimPendingFirst = `UPDATE runs SET status = 'running', started_at = $5
	WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND status = 'pending'
	  AND run_id = (SELECT m.run_id FROM messages m
		WHERE m.org_id = $1 AND m.user_id = $2 AND m.project_id = $3 AND m.agent_id = $4 AND m.status = 'unread'
		ORDER BY m.seq LIMIT 1)
	  AND NOT EXISTS (SELECT 1 FROM runs o
		WHERE o.org_id = $1 AND o.user_id = $2 AND o.project_id = $3 AND o.agent_id = $4 AND o.status = 'running')
	  AND NOT EXISTS (SELECT 1 FROM runs o
		WHERE o.org_id = $1 AND o.user_id = $2 AND o.project_id = $3 AND o.agent_id = $4 AND o.status = 'waiting_approval')
	RETURNING ` + runCols

// ClaimNextRun gives the agent its next unit of work, holding a transaction
// advisory lock on (scope, agent) so that concurrent claims for one agent
// run one after the other. Most claims take one round trip: a pipelined
// batch (one implicit transaction) reads the agent's queue and starts a
// pending run when that is what comes next, and what it read also settles
// a resume and "no work". Only a batch of plain messages, or a run message
// whose run is no longer pending, takes the transaction of claimInTx.
func (s *Store) ClaimNextRun(ctx context.Context, scope store.Scope, agentID string, newRunID string, extras ...store.ClaimExtras) (store.Claim, error) {
	if newRunID == "" {
		return store.Claim{}, errors.New("postgres: claim next run: new run id is empty")
	}
	if agentID == "" { // group runs have agent ""; no agent claims them
		return store.Claim{}, errors.New("postgres: claim next run: agent id is empty")
	}
	var want store.ClaimExtras
	for _, e := range extras {
		want.SessionHistory = max(want.SessionHistory, e.SessionHistory)
		want.CoreBlocks = want.CoreBlocks || e.CoreBlocks
	}
	claim, settled, err := s.claimInOneTrip(ctx, scope, agentID, want)
	if err != nil {
		return store.Claim{}, s.fail(ctx, "claim next run", err)
	}
	if settled {
		if claim.Run.ID == "" {
			return store.Claim{}, store.ErrNoWork
		}
		return claim, nil
	}
	return s.claimInTx(ctx, scope, agentID, newRunID)
}

// claimInOneTrip is ClaimNextRun's single batch. settled: the claim (no run
// in it: no work) is final; else claimInTx decides, in a transaction of its
// own. The extras asked for are read at the end of the batch, after the
// claim: the session history is that of the agent's running run, which by
// then is the run claimed (a run starts only when none is running). Those
// of a claim left to claimInTx are not read (the turn reads them itself).
func (s *Store) claimInOneTrip(ctx context.Context, scope store.Scope, agentID string, extras store.ClaimExtras) (claim store.Claim, settled bool, err error) {
	args := []any{scope.OrgID, scope.UserID, scope.ProjectID, agentID}
	b := &pgx.Batch{}
	queuePrelude(ctx, b, true, []int64{agentLockKey(scope, agentID)})
	prelude := b.Len()
	b.Queue(claimRunning, args...)
	b.Queue(claimWaiting, args...)
	b.Queue(claimOldest, args...)
	b.Queue(claimRunningMessages, args...)
	b.Queue(claimRunningCheckpoint, args...)
	b.Queue(claimUnreadUpTo2, args...)
	b.Queue(claimPendingFirst, append(args, s.now())...)
	if extras.SessionHistory > 0 {
		b.Queue(claimHistory, append(args, extras.SessionHistory)...)
	}
	if extras.CoreBlocks {
		b.Queue(coreBlocksOfAgent, args...)
	}
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	for range prelude {
		if _, err := br.Exec(); err != nil {
			return store.Claim{}, false, err
		}
	}
	var (
		running *store.Run
		waiting bool
		oldest  *store.Message
	)
	r, err := scanRun(br.QueryRow())
	switch {
	case err == nil:
		running = &r
	case !errors.Is(err, pgx.ErrNoRows):
		return store.Claim{}, false, err
	}
	if err := br.QueryRow().Scan(&waiting); err != nil {
		return store.Claim{}, false, err
	}
	m, _, err := scanOldest(br.QueryRow())
	switch {
	case err == nil:
		oldest = &m
	case !errors.Is(err, pgx.ErrNoRows):
		return store.Claim{}, false, err
	}
	runMsgs, err := collectNext(br, collectMessages)
	if err != nil {
		return store.Claim{}, false, err
	}
	var checkpoint *store.Checkpoint
	cp, err := scanCheckpoint(br.QueryRow())
	switch {
	case err == nil:
		checkpoint = &cp
	case !errors.Is(err, pgx.ErrNoRows):
		return store.Claim{}, false, err
	}
	var unread int
	if err := br.QueryRow().Scan(&unread); err != nil {
		return store.Claim{}, false, err
	}
	started, err := scanRun(br.QueryRow())
	switch {
	case err == nil:
		if oldest == nil || oldest.RunID != started.ID {
			return store.Claim{}, false, fmt.Errorf("claimed run %s is not the oldest message's", started.ID)
		}
		claim = store.Claim{Run: started, Messages: []store.Message{*oldest}, Alone: unread == 1}
	case !errors.Is(err, pgx.ErrNoRows):
		return store.Claim{}, false, err
	case running != nil:
		// 1. A run left running is resumed.
		claim = store.Claim{Run: *running, Messages: runMsgs, Checkpoint: checkpoint, Resumed: true}
	case waiting, oldest == nil:
		// A run waiting for an approval holds the queue; or it is empty.
	default:
		return store.Claim{}, false, br.Close()
	}
	if claim.Run.ID != "" && extras.SessionHistory > 0 {
		if claim.History, err = collectNext(br, collectSessionTurns); err != nil {
			return store.Claim{}, false, err
		}
		claim.HistoryRead = true
	}
	if claim.Run.ID != "" && extras.CoreBlocks {
		if claim.CoreBlocks, err = collectNext(br, collectCoreBlocks); err != nil {
			return store.Claim{}, false, err
		}
		claim.CoreBlocksRead = true
	}
	return claim, true, br.Close()
}

// collectNext reads the next result of br, rows, with collect.
func collectNext[T any](br pgx.BatchResults, collect func(pgx.Rows) ([]T, error)) ([]T, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	return collect(rows)
}

// claimInTx is the claim of the cases claimInOneTrip leaves: a batch of
// plain messages becomes a new run, and the messages of runs no longer
// pending are marked read on the way.
func (s *Store) claimInTx(ctx context.Context, scope store.Scope, agentID string, newRunID string) (store.Claim, error) {
	var claim store.Claim
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		args := []any{scope.OrgID, scope.UserID, scope.ProjectID, agentID}
		b := &pgx.Batch{}
		queuePrelude(ctx, b, true, []int64{agentLockKey(scope, agentID)})
		prelude := b.Len()
		b.Queue(claimRunning, args...)
		b.Queue(claimWaiting, args...)
		b.Queue(claimOldest, args...)
		var (
			waiting    bool
			running    *store.Run
			runMsgs    []store.Message
			checkpoint *store.Checkpoint
			oldest     *store.Message
			boundary   *int64
		)
		err := func() error {
			br := tx.SendBatch(ctx, b)
			defer br.Close()
			for range prelude {
				if _, err := br.Exec(); err != nil {
					return err
				}
			}
			r, err := scanRun(br.QueryRow())
			switch {
			case err == nil:
				running = &r
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
			if err := br.QueryRow().Scan(&waiting); err != nil {
				return err
			}
			m, next, err := scanOldest(br.QueryRow())
			switch {
			case err == nil:
				oldest, boundary = &m, next
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
			return br.Close()
		}()
		if err != nil {
			return err
		}

		// 1. A run left running is resumed. Its messages and checkpoint are
		// read only then: the common claim needs neither.
		if running != nil {
			err := func() error {
				rb := &pgx.Batch{}
				rb.Queue(claimRunningMessages, args...)
				rb.Queue(claimRunningCheckpoint, args...)
				br := tx.SendBatch(ctx, rb)
				defer br.Close()
				var err error
				if runMsgs, err = collectNext(br, collectMessages); err != nil {
					return err
				}
				cp, err := scanCheckpoint(br.QueryRow())
				switch {
				case err == nil:
					checkpoint = &cp
				case !errors.Is(err, pgx.ErrNoRows):
					return err
				}
				return br.Close()
			}()
			if err != nil {
				return err
			}
			claim = store.Claim{Run: *running, Messages: runMsgs, Checkpoint: checkpoint, Resumed: true}
			return nil
		}
		if waiting {
			return store.ErrNoWork
		}
		ts := s.now()
		for {
			if oldest == nil {
				return store.ErrNoWork
			}
			// 2. The oldest message is a pending run's: start that run.
			if oldest.RunID != "" {
				r, err := scanRun(tx.QueryRow(ctx, claimPending, append(args, oldest.RunID, ts)...))
				if err == nil {
					claim = store.Claim{Run: r, Messages: []store.Message{*oldest}}
					return nil
				}
				if !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
				// Its run is not pending (cancelled meanwhile, or ended without
				// reading it): the message is done with. Take the next one.
				s.logger.Warn("postgres: claim: unread message of a run that is not pending; marking it read",
					"run_id", oldest.RunID, "message_id", oldest.ID)
				if _, err := tx.Exec(ctx, `UPDATE messages SET status = 'read', read_at = $6
					WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND seq = $5`,
					append(args, oldest.Seq, ts)...); err != nil {
					return err
				}
				m, next, err := scanOldest(tx.QueryRow(ctx, claimOldest, args...))
				switch {
				case err == nil:
					oldest, boundary = &m, next
				case errors.Is(err, pgx.ErrNoRows):
					oldest = nil
				default:
					return err
				}
				continue
			}
			// 3. A batch of plain messages of the oldest one's session becomes a new run.
			end := int64(math.MaxInt64)
			if boundary != nil {
				end = *boundary
			}
			rows, err := tx.Query(ctx, claimBatch, append(args, newRunID, oldest.SessionKey, oldest.Seq, end, ts, oldest.GroupID)...)
			if err != nil {
				return err
			}
			msgs, err := collectMessages(rows)
			if err != nil {
				return err
			}
			if len(msgs) == 0 {
				return errors.New("claimed no messages")
			}
			contents := make([]string, len(msgs))
			for i, m := range msgs {
				contents[i] = m.Content
			}
			claim = store.Claim{
				Run: store.Run{
					Scope: scope, ID: newRunID, AgentID: agentID, SessionKey: oldest.SessionKey, GroupID: oldest.GroupID,
					Input: strings.Join(contents, "\n\n"), Status: store.RunRunning,
					CreatedAt: ts, StartedAt: &ts,
				},
				Messages: msgs,
			}
			return nil
		}
	})
	if err != nil {
		return store.Claim{}, s.fail(ctx, "claim next run", err)
	}
	return claim, nil
}

func scanOldest(row pgx.Row) (store.Message, *int64, error) {
	var m store.Message
	var runID *string
	var next *int64
	err := row.Scan(&m.Seq, &m.Scope.OrgID, &m.Scope.UserID, &m.Scope.ProjectID, &m.ID, &m.AgentID,
		&m.SessionKey, &m.GroupID, &m.Kind, &m.SenderType, &m.SenderID, &m.Content, &runID, &m.Status,
		&m.CreatedAt, &m.ReadAt, &next)
	if err != nil {
		return store.Message{}, nil, err
	}
	if runID != nil {
		m.RunID = *runID
	}
	m.CreatedAt = utc(m.CreatedAt)
	m.ReadAt = utcPtr(m.ReadAt)
	return m, next, nil
}

func scanCheckpoint(row pgx.Row) (store.Checkpoint, error) {
	var cp store.Checkpoint
	var state []byte
	if err := row.Scan(&cp.RunID, &cp.Step, &state, &cp.UpdatedAt); err != nil {
		return store.Checkpoint{}, err
	}
	cp.UpdatedAt = utc(cp.UpdatedAt)
	if state != nil {
		cp.State = json.RawMessage(state)
	}
	return cp, nil
}

// insertRunEvents inserts the events given as arrays from $n, joined with the
// CTE r (the run, with its agent_id and group_id), in the caller's order.
func insertRunEvents(n int) string {
	return `INSERT INTO events (org_id, user_id, project_id, run_id, agent_id, group_id, step_id, type, ts, payload)
		SELECT u.org_id, u.user_id, u.project_id, u.run_id,
			COALESCE(NULLIF(u.agent_id, ''), r.agent_id), COALESCE(NULLIF(u.group_id, ''), r.group_id),
			u.step_id, u.type, u.ts, u.payload::json
		FROM ` + unnestEvents(n) + `, r
		ORDER BY u.ord
		RETURNING id`
}

// lastRunEvent selects the id of the newest event of the run $1..$4 (scope,
// run id) as the statement's snapshot shows it, NULL when the run has none.
// The snapshot is taken under the scope's event lock, before the statement's
// own inserts, which it does not see: so it is exactly the run's event before
// the statement's first (see store.ChainRunPrev). The scope is written as in
// eventWhere, so the read stays on events_run_idx: with plain equalities the
// generic plan walked the scope's index back from its newest event,
// filtering on run_id, and a new run (no event yet) read all of the scope's
// events (7 ms at 4,400 events, growing with every turn).
const lastRunEvent = `(SELECT max(id) FROM events
			WHERE run_id = $4 AND (org_id, user_id, project_id) IS NOT DISTINCT FROM ($1::text, $2::text, $3::text))`

// runPrev gives the stored events of run runID their RunPrev.
func runPrev(events []store.Event, runID string, last *int64) {
	var l int64
	if last != nil {
		l = *last
	}
	store.ChainRunPrev(events, runID, l)
}

// SaveStep appends the step's events and, when cp is non-nil, stores the
// checkpoint and the run's step count, in one statement.
func (s *Store) SaveStep(ctx context.Context, scope store.Scope, runID string, cp *store.Checkpoint, events []store.Event) ([]store.Event, error) {
	out, err := store.RunEvents(scope, runID, events, s.now())
	if err != nil {
		return nil, fmt.Errorf("postgres: save step: %w", err)
	}
	var step *int
	var state *string
	if cp != nil {
		step = &cp.Step
		if len(cp.State) > 0 {
			if !json.Valid(cp.State) {
				return nil, errors.New("postgres: save step: checkpoint state is not valid JSON")
			}
			state = payloadArg(cp.State)
		}
	}
	args := append([]any{scope.OrgID, scope.UserID, scope.ProjectID, runID, step, state, s.now()},
		newEventArrays(out).args()...)
	var agentID, groupID *string
	var ids []int64
	var last *int64
	err = s.queryRowWithEvents(ctx, true, eventLockKeys(out), `WITH r AS (
			UPDATE runs SET steps = COALESCE($5::int, steps)
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $4
			RETURNING agent_id, group_id),
		cp AS (
			INSERT INTO checkpoints (org_id, user_id, project_id, run_id, step, state, updated_at)
			SELECT $1, $2, $3, $4, $5::int, $6::json, $7 FROM r WHERE $5::int IS NOT NULL
			ON CONFLICT (org_id, user_id, project_id, run_id) DO UPDATE
				SET step = excluded.step, state = excluded.state, updated_at = excluded.updated_at),
		ins AS (`+insertRunEvents(8)+`)
		SELECT (SELECT agent_id FROM r), (SELECT group_id FROM r), ARRAY(SELECT id FROM ins ORDER BY id), `+lastRunEvent,
		args...).Scan(&agentID, &groupID, &ids, &last)
	if err == nil && agentID == nil {
		err = store.ErrNotFound
	}
	if err == nil {
		store.FillFromRun(out, *agentID, *groupID)
		err = assignIDs(out, ids)
	}
	if err == nil {
		runPrev(out, runID, last)
	}
	if err != nil {
		return nil, s.fail(ctx, "save step", err)
	}
	return out, nil
}

// FinishRun ends a running run with res, marks its messages read, appends
// events and enqueues res.Outbox, in one statement. ErrConflict, with nothing
// stored, when the run is not running.
func (s *Store) FinishRun(ctx context.Context, scope store.Scope, runID string, res store.RunResult, events []store.Event) ([]store.Event, error) {
	if !store.RunFinished(res.Status) {
		return nil, fmt.Errorf("postgres: finish run: status %q is not a final status", res.Status)
	}
	out, err := store.RunEvents(scope, runID, events, s.now())
	if err != nil {
		return nil, fmt.Errorf("postgres: finish run: %w", err)
	}
	var runErr *string
	if res.Error != nil {
		b, err := json.Marshal(res.Error)
		if err != nil {
			return nil, fmt.Errorf("postgres: finish run: %w", err)
		}
		s := string(b)
		runErr = &s
	}
	usage, err := json.Marshal(res.Usage)
	if err != nil {
		return nil, fmt.Errorf("postgres: finish run: %w", err)
	}
	outbox, err := outboxArrays(scope, res.Outbox)
	if err != nil {
		return nil, fmt.Errorf("postgres: finish run: %w", err)
	}
	args := append([]any{scope.OrgID, scope.UserID, scope.ProjectID, runID, res.Status, res.Output,
		runErr, res.Steps, string(usage), s.now()}, newEventArrays(out).args()...)
	args = append(args, outbox.args()...) // from $21
	var agentID, groupID *string
	var ids []int64
	var exists bool
	var last *int64
	err = s.queryRowWithEvents(ctx, false, eventLockKeys(out), `WITH r AS (
			UPDATE runs SET status = $5, output = $6, error = $7::jsonb, steps = $8, usage = $9::jsonb, ended_at = $10
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $4 AND status = 'running'
			RETURNING agent_id, group_id),
		m AS (
			UPDATE messages SET status = 'read', read_at = $10
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $4 AND status = 'unread'
			  AND EXISTS (SELECT 1 FROM r)),
		ob AS (`+insertMessages(21, 10, "EXISTS (SELECT 1 FROM r)")+`),`+summaryCTE(res)+`
		ins AS (`+insertRunEvents(11)+`)
		SELECT (SELECT agent_id FROM r), (SELECT group_id FROM r), ARRAY(SELECT id FROM ins ORDER BY id),
			EXISTS (SELECT 1 FROM runs WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $4),
			`+lastRunEvent,
		args...).Scan(&agentID, &groupID, &ids, &exists, &last)
	if err == nil && agentID == nil {
		err = store.ErrNotFound
		if exists {
			err = fmt.Errorf("run is not running: %w", store.ErrConflict)
		}
	}
	if err == nil {
		store.FillFromRun(out, *agentID, *groupID)
		err = assignIDs(out, ids)
	}
	if err == nil {
		runPrev(out, runID, last)
	}
	if err != nil {
		return nil, s.fail(ctx, "finish run", err)
	}
	return out, nil
}

// summaryCTE queues the run for its episodic summary when res asks for one
// and the run completes (see store.RunResult.Remember).
func summaryCTE(res store.RunResult) string {
	if !res.Remember || res.Status != store.RunCompleted {
		return ""
	}
	return `
		sq AS (INSERT INTO run_summary_queue (org_id, user_id, project_id, run_id)
			SELECT $1, $2, $3, $4 FROM r WHERE r.agent_id <> '' ON CONFLICT DO NOTHING),`
}

// PendingSummaries returns runs queued for a summary (see store.RunStore).
// A queued run that no longer exists comes back with only its Scope and ID.
func (s *Store) PendingSummaries(ctx context.Context, limit int) ([]store.Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT q.org_id, q.user_id, q.project_id, q.run_id, coalesce(r.agent_id, ''),
			coalesce(r.session_key, ''), coalesce(r.input, ''), coalesce(r.output, ''), coalesce(r.status, ''), r.ended_at
		FROM run_summary_queue q LEFT JOIN runs r
			ON r.org_id = q.org_id AND r.user_id = q.user_id AND r.project_id = q.project_id AND r.run_id = q.run_id
		ORDER BY q.run_id LIMIT $1`, limit)
	if err != nil {
		return nil, s.fail(ctx, "pending summaries", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Run, error) {
		var r store.Run
		err := row.Scan(&r.Scope.OrgID, &r.Scope.UserID, &r.Scope.ProjectID, &r.ID, &r.AgentID, &r.SessionKey, &r.Input, &r.Output, &r.Status, &r.EndedAt)
		r.EndedAt = utcPtr(r.EndedAt)
		return r, err
	})
	return out, s.fail(ctx, "pending summaries", err)
}

// SummariesDone takes runs off the summary queue.
func (s *Store) SummariesDone(ctx context.Context, runs []store.Run) error {
	if len(runs) == 0 {
		return nil
	}
	cols := make([][]string, 4)
	for _, r := range runs {
		cols[0] = append(cols[0], r.Scope.OrgID)
		cols[1] = append(cols[1], r.Scope.UserID)
		cols[2] = append(cols[2], r.Scope.ProjectID)
		cols[3] = append(cols[3], r.ID)
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM run_summary_queue q USING unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS d(o, u, p, r)
		WHERE q.org_id = d.o AND q.user_id = d.u AND q.project_id = d.p AND q.run_id = d.r`, cols[0], cols[1], cols[2], cols[3])
	return s.fail(ctx, "summaries done", err)
}

// outboxArrays checks a run's outbox: messages of the run's scope (a zero
// Scope means it), never of another.
func outboxArrays(scope store.Scope, outbox []store.NewMessage) (messageArrays, error) {
	msgs := make([]store.NewMessage, len(outbox))
	for i, m := range outbox {
		if m.Scope == (store.Scope{}) {
			m.Scope = scope
		}
		if m.Scope != scope {
			return messageArrays{}, fmt.Errorf("outbox message %s is for another scope", m.ID)
		}
		msgs[i] = m
	}
	a, err := newMessageArrays(msgs)
	if err != nil {
		return messageArrays{}, fmt.Errorf("outbox: %w", err)
	}
	return a, nil
}

// CancelRun cancels a pending run and marks its message read, or flags a
// running one (CancelRequested), in one statement. A run waiting for an
// approval is flagged and made running again (the agent claims it and ends
// it cancelled), and its pending approval is denied. ErrConflict, with the run,
// when it has already ended.
func (s *Store) CancelRun(ctx context.Context, scope store.Scope, runID string) (store.Run, error) {
	ts := s.now()
	r, err := scanRun(s.pool.QueryRow(ctx, `WITH r AS (
			UPDATE runs SET
				status = CASE WHEN status = 'pending' THEN 'cancelled'
					WHEN status = 'waiting_approval' THEN 'running' ELSE status END,
				ended_at = CASE WHEN status = 'pending' THEN $5 ELSE ended_at END,
				cancel_requested = cancel_requested OR status <> 'pending'
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $4
			  AND status NOT IN ('completed', 'failed', 'cancelled')
			RETURNING `+runCols+`),
		a AS (
			UPDATE approvals SET status = 'denied', decided_by = 'system', decision_reason = 'the run was cancelled',
				decided_at = $5
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $4 AND status = 'pending'
			  AND EXISTS (SELECT 1 FROM r)),
		m AS (
			UPDATE messages SET status = 'read', read_at = $5
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $4 AND status = 'unread'
			  AND EXISTS (SELECT 1 FROM r WHERE r.status = 'cancelled'))
		SELECT `+runCols+` FROM r`,
		scope.OrgID, scope.UserID, scope.ProjectID, runID, ts))
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.Run{}, s.fail(ctx, "cancel run", err)
	}
	// Nothing to cancel: the run has ended, or does not exist.
	r, err = s.getRun(ctx, s.pool, scope, runID)
	if err != nil {
		return store.Run{}, s.fail(ctx, "cancel run", err)
	}
	return r, fmt.Errorf("postgres: cancel run: run is %s: %w", r.Status, store.ErrConflict)
}

// SessionHistory returns the last limit completed runs of the agent's
// session, oldest first. It reads them from an index of completed runs by
// session and end time, so its cost does not grow with the session.
func (s *Store) SessionHistory(ctx context.Context, scope store.Scope, agentID, sessionKey string, limit int) ([]store.SessionTurn, error) {
	if limit <= 0 {
		return []store.SessionTurn{}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT run_id, input, output FROM runs
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND session_key = $5
		  AND status = 'completed'
		ORDER BY ended_at DESC, run_id DESC LIMIT $6`,
		scope.OrgID, scope.UserID, scope.ProjectID, agentID, sessionKey, limit)
	if err != nil {
		return nil, s.fail(ctx, "session history", err)
	}
	turns, err := collectSessionTurns(rows)
	if err != nil {
		return nil, s.fail(ctx, "session history", err)
	}
	return turns, nil
}

// claimHistory is SessionHistory's read for the session of the agent's
// running run ($5 the limit), in a claim's batch (see claimInOneTrip); a run
// without a session has none.
const claimHistory = `SELECT run_id, input, output FROM runs
	WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND status = 'completed'
	  AND session_key = (SELECT o.session_key FROM runs o
		WHERE o.org_id = $1 AND o.user_id = $2 AND o.project_id = $3 AND o.agent_id = $4 AND o.status = 'running'
		LIMIT 1)
	  AND session_key <> ''
	ORDER BY ended_at DESC, run_id DESC LIMIT $5`

// collectSessionTurns reads turns newest first and returns them oldest first.
func collectSessionTurns(rows pgx.Rows) ([]store.SessionTurn, error) {
	turns, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.SessionTurn, error) {
		var t store.SessionTurn
		err := row.Scan(&t.RunID, &t.Input, &t.Output)
		return t, err
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(turns)
	if turns == nil {
		turns = []store.SessionTurn{}
	}
	return turns, nil
}

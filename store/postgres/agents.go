package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

// agentCols are the columns scanAgent reads, unread count last. They name the
// table, so they work after FROM agents and in RETURNING of agents.
const agentCols = `agents.org_id, agents.user_id, agents.project_id, agents.agent_id, agents.name,
	agents.system_prompt, agents.model, agents.tools, agents.skills, agents.parent_id, agents.state, agents.created_at, agents.updated_at,
	(SELECT count(*) FROM messages m WHERE m.org_id = agents.org_id AND m.user_id = agents.user_id
		AND m.project_id = agents.project_id AND m.agent_id = agents.agent_id AND m.status = 'unread')`

func scanAgent(row pgx.Row) (store.Agent, error) {
	var a store.Agent
	var tools, skills []byte
	err := row.Scan(&a.Scope.OrgID, &a.Scope.UserID, &a.Scope.ProjectID, &a.ID, &a.Name,
		&a.SystemPrompt, &a.Model, &tools, &skills, &a.ParentID, &a.State, &a.CreatedAt, &a.UpdatedAt, &a.Unread)
	if err != nil {
		return store.Agent{}, err
	}
	a.CreatedAt, a.UpdatedAt = utc(a.CreatedAt), utc(a.UpdatedAt)
	a.Tools = []string{}
	if len(tools) > 0 {
		if err := json.Unmarshal(tools, &a.Tools); err != nil {
			return store.Agent{}, fmt.Errorf("decode tools: %w", err)
		}
	}
	a.Skills = []string{}
	if len(skills) > 0 {
		if err := json.Unmarshal(skills, &a.Skills); err != nil {
			return store.Agent{}, fmt.Errorf("decode skills: %w", err)
		}
	}
	return a, nil
}

// newAgentArgs validates a and returns the arguments of insertAgent.
func newAgentArgs(a store.Agent, now time.Time) ([]any, error) {
	if err := store.CheckScope(a.Scope); err != nil {
		return nil, err
	}
	if a.ID == "" {
		return nil, errors.New("agent id is empty")
	}
	state := a.State
	if state == "" {
		state = store.AgentIdle
	}
	tools, err := store.ToolsJSON(a.Tools)
	if err != nil {
		return nil, err
	}
	skills, err := store.ToolsJSON(a.Skills)
	if err != nil {
		return nil, err
	}
	return []any{a.Scope.OrgID, a.Scope.UserID, a.Scope.ProjectID, a.ID, a.Name, a.SystemPrompt,
		a.Model, tools, state, now, a.ParentID, skills}, nil
}

const insertAgent = `INSERT INTO agents (org_id, user_id, project_id, agent_id, name, system_prompt, model,
	tools, state, created_at, updated_at, parent_id, skills)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $10, $11, $12::jsonb)`

// CreateAgent stores a new agent; ErrConflict when its id is taken in the scope.
func (s *Store) CreateAgent(ctx context.Context, a store.Agent) (store.Agent, error) {
	args, err := newAgentArgs(a, s.now())
	if err != nil {
		return store.Agent{}, fmt.Errorf("postgres: create agent: %w", err)
	}
	var out store.Agent
	if limit := s.Quotas().AgentsPerScope; limit > 0 {
		out, err = s.insertAgentWithin(ctx, a.Scope, a.ID, limit, false, args)
	} else {
		out, err = scanAgent(s.pool.QueryRow(ctx, insertAgent+" RETURNING "+agentCols, args...))
	}
	if err != nil {
		return store.Agent{}, s.fail(ctx, "create agent", err)
	}
	return out, nil
}

// agentQuotaLockKey is the advisory lock that serialises the agent inserts
// of a scope while its agent quota is on: under READ COMMITTED two inserts
// that each count the scope's agents before the other commits would both
// pass, so each counts only once it holds the lock, and sees the other's row.
func agentQuotaLockKey(scope store.Scope) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("agent-quota\x00"))
	for _, part := range []string{scope.OrgID, scope.UserID, scope.ProjectID} {
		_, _ = h.Write([]byte(part))
		_, _ = h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

// insertAgentWithin inserts an agent (args of insertAgent) unless its scope
// already has limit agents: store.QuotaError then, with nothing written.
// ensure: an agent of that id that exists is returned instead.
func (s *Store) insertAgentWithin(ctx context.Context, scope store.Scope, agentID string, limit int64, ensure bool, args []any) (store.Agent, error) {
	var out store.Agent
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, agentQuotaLockKey(scope)); err != nil {
			return err
		}
		// An agent of that id is returned (ensure) or a conflict, at the
		// quota as below it.
		a, err := scanAgent(tx.QueryRow(ctx, `SELECT `+agentCols+` FROM agents
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4`,
			scope.OrgID, scope.UserID, scope.ProjectID, agentID))
		switch {
		case err == nil && ensure:
			out = a
			return nil
		case err == nil:
			return fmt.Errorf("agent %q exists: %w", agentID, store.ErrConflict)
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM agents WHERE org_id = $1 AND user_id = $2 AND project_id = $3`,
			scope.OrgID, scope.UserID, scope.ProjectID).Scan(&n); err != nil {
			return err
		}
		if n >= limit {
			return &store.QuotaError{Quota: store.QuotaAgents, Limit: limit, Used: n, Adding: 1}
		}
		out, err = scanAgent(tx.QueryRow(ctx, insertAgent+" RETURNING "+agentCols, args...))
		return err
	})
	return out, err
}

// EnsureAgent returns the agent, creating it from a when it does not exist.
// Concurrent calls all return the one stored agent.
func (s *Store) EnsureAgent(ctx context.Context, a store.Agent) (store.Agent, error) {
	args, err := newAgentArgs(a, s.now())
	if err != nil {
		return store.Agent{}, fmt.Errorf("postgres: ensure agent: %w", err)
	}
	// The common case is an agent that exists: one round trip.
	out, err := s.getAgent(ctx, a.Scope, a.ID)
	if err == nil || !errors.Is(err, pgx.ErrNoRows) {
		return out, s.fail(ctx, "ensure agent", err)
	}
	if limit := s.Quotas().AgentsPerScope; limit > 0 {
		out, err = s.insertAgentWithin(ctx, a.Scope, a.ID, limit, true, args)
		return out, s.fail(ctx, "ensure agent", err)
	}
	out, err = scanAgent(s.pool.QueryRow(ctx, insertAgent+" ON CONFLICT DO NOTHING RETURNING "+agentCols, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		// Another caller inserted it after our first read; this statement's
		// snapshot sees it.
		out, err = s.getAgent(ctx, a.Scope, a.ID)
	}
	return out, s.fail(ctx, "ensure agent", err)
}

func (s *Store) getAgent(ctx context.Context, scope store.Scope, agentID string) (store.Agent, error) {
	return scanAgent(s.pool.QueryRow(ctx, `SELECT `+agentCols+` FROM agents
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4`,
		scope.OrgID, scope.UserID, scope.ProjectID, agentID))
}

// GetAgent returns one agent with its unread count.
func (s *Store) GetAgent(ctx context.Context, scope store.Scope, agentID string) (store.Agent, error) {
	a, err := s.getAgent(ctx, scope, agentID)
	if err != nil {
		return store.Agent{}, s.fail(ctx, "get agent", err)
	}
	return a, nil
}

// ListAgents returns a page of the scope's agents by creation time, and how
// many there are.
func (s *Store) ListAgents(ctx context.Context, scope store.Scope, page store.Page) ([]store.Agent, int, error) {
	limit, offset := store.PageBounds(page)
	b := &pgx.Batch{}
	b.Queue(`SELECT count(*) FROM agents WHERE org_id = $1 AND user_id = $2 AND project_id = $3`,
		scope.OrgID, scope.UserID, scope.ProjectID)
	b.Queue(`SELECT `+agentCols+` FROM agents WHERE org_id = $1 AND user_id = $2 AND project_id = $3
		ORDER BY created_at, agent_id LIMIT $4 OFFSET $5`,
		scope.OrgID, scope.UserID, scope.ProjectID, limit, offset)
	var total int
	agents := []store.Agent{}
	err := func() error {
		br := s.pool.SendBatch(ctx, b)
		defer br.Close()
		if err := br.QueryRow().Scan(&total); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a, err := scanAgent(rows)
			if err != nil {
				return err
			}
			agents = append(agents, a)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return br.Close()
	}()
	if err != nil {
		return nil, 0, s.fail(ctx, "list agents", err)
	}
	return agents, total, nil
}

// UpdateAgent applies the non-nil fields of patch and bumps updated_at.
func (s *Store) UpdateAgent(ctx context.Context, scope store.Scope, agentID string, patch store.AgentPatch) (store.Agent, error) {
	var tools *string
	if patch.Tools != nil {
		t, err := store.ToolsJSON(*patch.Tools)
		if err != nil {
			return store.Agent{}, fmt.Errorf("postgres: update agent: %w", err)
		}
		tools = &t
	}
	var skills *string
	if patch.Skills != nil {
		t, err := store.ToolsJSON(*patch.Skills)
		if err != nil {
			return store.Agent{}, fmt.Errorf("postgres: update agent: %w", err)
		}
		skills = &t
	}
	a, err := scanAgent(s.pool.QueryRow(ctx, `UPDATE agents SET
			name = COALESCE($5, name),
			system_prompt = COALESCE($6, system_prompt),
			model = COALESCE($7, model),
			tools = COALESCE($8::jsonb, tools),
			skills = COALESCE($10::jsonb, skills),
			updated_at = $9
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4
		RETURNING `+agentCols,
		scope.OrgID, scope.UserID, scope.ProjectID, agentID,
		patch.Name, patch.SystemPrompt, patch.Model, tools, s.now(), skills))
	if err != nil {
		return store.Agent{}, s.fail(ctx, "update agent", err)
	}
	return a, nil
}

// DeleteAgent deletes the agent; its messages, runs and events stay as its
// trace. It holds the scope's team lock, so no membership is added between
// the check and the delete.
func (s *Store) DeleteAgent(ctx context.Context, scope store.Scope, agentID string, cascade bool) error {
	err := s.teamTx(ctx, scope, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM agents
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4`,
			scope.OrgID, scope.UserID, scope.ProjectID, agentID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		tag, err = tx.Exec(ctx, `DELETE FROM group_members
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4`,
			scope.OrgID, scope.UserID, scope.ProjectID, agentID)
		if err != nil {
			return err
		}
		if n := tag.RowsAffected(); n > 0 && !cascade {
			return fmt.Errorf("agent %s is a member of %d groups: %w", agentID, n, store.ErrInUse)
		}
		return nil
	})
	return s.fail(ctx, "delete agent", err)
}

// SetAgentState stores the state and appends ev (scope, agent id, id and a
// missing time filled in) in one statement, and returns the stored event.
func (s *Store) SetAgentState(ctx context.Context, scope store.Scope, agentID, state string, ev store.Event) (store.Event, error) {
	if state == "" {
		return store.Event{}, errors.New("postgres: set agent state: state is empty")
	}
	ev.Scope = scope
	if ev.AgentID == "" {
		ev.AgentID = agentID
	}
	ts := s.now()
	ev, err := store.NormaliseEvent(ev, ts)
	if err != nil {
		return store.Event{}, fmt.Errorf("postgres: set agent state: %w", err)
	}
	err = s.queryRowWithEvents(ctx, true, eventLockKeys([]store.Event{ev}), `WITH a AS (
			UPDATE agents SET state = $5, updated_at = $6
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4
			RETURNING 1)
		INSERT INTO events (org_id, user_id, project_id, run_id, agent_id, group_id, step_id, type, ts, payload)
		SELECT $1, $2, $3, $7, $8, $9, $10, $11, $12, $13::json FROM a
		RETURNING id`,
		scope.OrgID, scope.UserID, scope.ProjectID, agentID, state, ts,
		ev.RunID, ev.AgentID, ev.GroupID, ev.StepID, ev.Type, ev.TS, payloadArg(ev.Payload)).Scan(&ev.ID)
	if err != nil {
		return store.Event{}, s.fail(ctx, "set agent state", err)
	}
	return ev, nil
}

// ListAgentsWithWork returns every agent, in every scope, with unread
// messages or a running run. Group runs (empty agent_id) are no agent's work.
func (s *Store) ListAgentsWithWork(ctx context.Context) ([]store.AgentRef, error) {
	rows, err := s.pool.Query(ctx, `SELECT org_id, user_id, project_id, agent_id FROM messages WHERE status = 'unread' AND agent_id <> ''
		UNION
		SELECT org_id, user_id, project_id, agent_id FROM runs WHERE status = 'running' AND agent_id <> ''
		ORDER BY 1, 2, 3, 4`)
	if err != nil {
		return nil, s.fail(ctx, "list agents with work", err)
	}
	refs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AgentRef, error) {
		var r store.AgentRef
		err := row.Scan(&r.Scope.OrgID, &r.Scope.UserID, &r.Scope.ProjectID, &r.AgentID)
		return r, err
	})
	if err != nil {
		return nil, s.fail(ctx, "list agents with work", err)
	}
	return refs, nil
}

// CountUnreadMessages counts the unread messages of every agent in every
// scope (over the partial index of unread messages).
func (s *Store) CountUnreadMessages(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE status = 'unread' AND agent_id <> ''`).Scan(&n); err != nil {
		return 0, s.fail(ctx, "count unread messages", err)
	}
	return n, nil
}

// HasWork reports whether the agent has unread messages or a running run,
// and no run waiting for an approval (which holds everything behind it).
func (s *Store) HasWork(ctx context.Context, scope store.Scope, agentID string) (bool, error) {
	var has bool
	err := s.pool.QueryRow(ctx, `SELECT (EXISTS (SELECT 1 FROM messages
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND status = 'unread')
		OR EXISTS (SELECT 1 FROM runs
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND status = 'running'))
		AND NOT EXISTS (SELECT 1 FROM runs
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND status = 'waiting_approval')`,
		scope.OrgID, scope.UserID, scope.ProjectID, agentID).Scan(&has)
	if err != nil {
		return false, s.fail(ctx, "has work", err)
	}
	return has, nil
}

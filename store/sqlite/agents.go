package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/openintern/openintern/store"
)

// agentCols are the columns scanAgent reads, unread count last.
const agentCols = `agents.org_id, agents.user_id, agents.project_id, agents.agent_id, agents.name,
	agents.system_prompt, agents.model, agents.tools, agents.skills, agents.parent_id, agents.state, agents.created_at, agents.updated_at,
	(SELECT count(*) FROM messages m WHERE m.org_id = agents.org_id AND m.user_id = agents.user_id
		AND m.project_id = agents.project_id AND m.agent_id = agents.agent_id AND m.status = 'unread')`

type scanner interface{ Scan(dest ...any) error }

func scanAgent(row scanner) (store.Agent, error) {
	var a store.Agent
	var tools, skills string
	var created, updated int64
	err := row.Scan(&a.Scope.OrgID, &a.Scope.UserID, &a.Scope.ProjectID, &a.ID, &a.Name,
		&a.SystemPrompt, &a.Model, &tools, &skills, &a.ParentID, &a.State, &created, &updated, &a.Unread)
	if err != nil {
		return store.Agent{}, err
	}
	a.CreatedAt, a.UpdatedAt = fromMicros(created), fromMicros(updated)
	a.Tools = []string{}
	if tools != "" {
		if err := json.Unmarshal([]byte(tools), &a.Tools); err != nil {
			return store.Agent{}, fmt.Errorf("decode tools: %w", err)
		}
	}
	a.Skills = []string{}
	if skills != "" {
		if err := json.Unmarshal([]byte(skills), &a.Skills); err != nil {
			return store.Agent{}, fmt.Errorf("decode skills: %w", err)
		}
	}
	return a, nil
}

const getAgentSQL = `SELECT ` + agentCols + ` FROM agents WHERE ` + scopeCond + ` AND agent_id = ?`

func getAgent(ctx context.Context, db interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, scope store.Scope, agentID string) (store.Agent, error) {
	return scanAgent(db.QueryRowContext(ctx, getAgentSQL, scopeArgs(scope, agentID)...))
}

// insertAgent inserts a (ignoring an existing one when orIgnore) and reads it back.
func (s *Store) insertAgent(ctx context.Context, a store.Agent, orIgnore bool) (store.Agent, error) {
	if err := store.CheckScope(a.Scope); err != nil {
		return store.Agent{}, err
	}
	if a.ID == "" {
		return store.Agent{}, errors.New("agent id is empty")
	}
	if a.State == "" {
		a.State = store.AgentIdle
	}
	tools, err := store.ToolsJSON(a.Tools)
	if err != nil {
		return store.Agent{}, err
	}
	skills, err := store.ToolsJSON(a.Skills)
	if err != nil {
		return store.Agent{}, err
	}
	ts := micros(s.now())
	conflict := ""
	if orIgnore {
		conflict = " ON CONFLICT DO NOTHING"
	}
	var out store.Agent
	limit := s.Quotas().AgentsPerScope
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		// The one writer makes the count and the insert atomic: no other
		// insert of the scope can come between them.
		if limit > 0 {
			// An agent of that id is returned (orIgnore) or a conflict, at
			// the quota as below it.
			existing, err := getAgent(ctx, tx, a.Scope, a.ID)
			switch {
			case err == nil && orIgnore:
				out = existing
				return nil
			case err == nil:
				return fmt.Errorf("agent %q exists: %w", a.ID, store.ErrConflict)
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			var n int64
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM agents WHERE `+scopeCond, scopeArgs(a.Scope)...).Scan(&n); err != nil {
				return err
			}
			if n >= limit {
				return &store.QuotaError{Quota: store.QuotaAgents, Limit: limit, Used: n, Adding: 1}
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO agents (org_id, user_id, project_id, agent_id, name,
				system_prompt, model, tools, parent_id, state, created_at, updated_at, skills)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`+conflict,
			scopeArgs(a.Scope, a.ID, a.Name, a.SystemPrompt, a.Model, tools, a.ParentID, a.State, ts, ts, skills)...)
		if err != nil {
			return err
		}
		out, err = getAgent(ctx, tx, a.Scope, a.ID)
		return err
	})
	return out, err
}

// CreateAgent stores a new agent; ErrConflict when its id is taken in the scope.
func (s *Store) CreateAgent(ctx context.Context, a store.Agent) (store.Agent, error) {
	out, err := s.insertAgent(ctx, a, false)
	if err != nil {
		return store.Agent{}, fail("create agent", err)
	}
	return out, nil
}

// EnsureAgent returns the agent, creating it from a when it does not exist.
func (s *Store) EnsureAgent(ctx context.Context, a store.Agent) (store.Agent, error) {
	// The common case is an agent that exists: read it without the writer.
	out, err := getAgent(ctx, s.r, a.Scope, a.ID)
	if err == nil {
		return out, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.Agent{}, fail("ensure agent", err)
	}
	out, err = s.insertAgent(ctx, a, true)
	if err != nil {
		return store.Agent{}, fail("ensure agent", err)
	}
	return out, nil
}

// GetAgent returns one agent with its unread count.
func (s *Store) GetAgent(ctx context.Context, scope store.Scope, agentID string) (store.Agent, error) {
	a, err := getAgent(ctx, s.r, scope, agentID)
	if err != nil {
		return store.Agent{}, fail("get agent", err)
	}
	return a, nil
}

// ListAgents returns a page of the scope's agents by creation time, and how
// many there are.
func (s *Store) ListAgents(ctx context.Context, scope store.Scope, page store.Page) ([]store.Agent, int, error) {
	limit, offset := store.PageBounds(page)
	agents, total, err := listPage(ctx, s, `SELECT count(*) FROM agents WHERE `+scopeCond, scopeArgs(scope),
		`SELECT `+agentCols+` FROM agents WHERE `+scopeCond+` ORDER BY created_at, agent_id LIMIT ? OFFSET ?`,
		scopeArgs(scope, limit, offset), scanAgent)
	if err != nil {
		return nil, 0, fail("list agents", err)
	}
	return agents, total, nil
}

// UpdateAgent applies the non-nil fields of patch and bumps updated_at.
func (s *Store) UpdateAgent(ctx context.Context, scope store.Scope, agentID string, patch store.AgentPatch) (store.Agent, error) {
	var tools *string
	if patch.Tools != nil {
		t, err := store.ToolsJSON(*patch.Tools)
		if err != nil {
			return store.Agent{}, fmt.Errorf("sqlite: update agent: %w", err)
		}
		tools = &t
	}
	var skills *string
	if patch.Skills != nil {
		t, err := store.ToolsJSON(*patch.Skills)
		if err != nil {
			return store.Agent{}, fmt.Errorf("sqlite: update agent: %w", err)
		}
		skills = &t
	}
	var out store.Agent
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE agents SET
				name = COALESCE(?, name),
				system_prompt = COALESCE(?, system_prompt),
				model = COALESCE(?, model),
				tools = COALESCE(?, tools),
				skills = COALESCE(?, skills),
				updated_at = ?
			WHERE `+scopeCond+` AND agent_id = ?`,
			append([]any{patch.Name, patch.SystemPrompt, patch.Model, tools, skills, micros(s.now())},
				scopeArgs(scope, agentID)...)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, store.ErrNotFound)
		}
		out, err = getAgent(ctx, tx, scope, agentID)
		return err
	})
	if err != nil {
		return store.Agent{}, fail("update agent", err)
	}
	return out, nil
}

// DeleteAgent deletes the agent; its messages, runs and events stay as its trace.
func (s *Store) DeleteAgent(ctx context.Context, scope store.Scope, agentID string, cascade bool) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM agents WHERE `+scopeCond+` AND agent_id = ?`,
			scopeArgs(scope, agentID)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, store.ErrNotFound)
		}
		res, err = tx.ExecContext(ctx, `DELETE FROM group_members WHERE `+scopeCond+` AND agent_id = ?`,
			scopeArgs(scope, agentID)...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n > 0 && !cascade {
			return fmt.Errorf("agent %s is a member of %d groups: %w", agentID, n, store.ErrInUse)
		}
		return nil
	})
	return fail("delete agent", err)
}

// SetAgentState stores the state and appends ev (scope, agent id, id and a
// missing time filled in) in one transaction, and returns the stored event.
func (s *Store) SetAgentState(ctx context.Context, scope store.Scope, agentID, state string, ev store.Event) (store.Event, error) {
	if state == "" {
		return store.Event{}, errors.New("sqlite: set agent state: state is empty")
	}
	ev.Scope = scope
	if ev.AgentID == "" {
		ev.AgentID = agentID
	}
	ts := s.now()
	ev, err := store.NormaliseEvent(ev, ts)
	if err != nil {
		return store.Event{}, fmt.Errorf("sqlite: set agent state: %w", err)
	}
	err = s.fencedTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE agents SET state = ?, updated_at = ? WHERE `+scopeCond+` AND agent_id = ?`,
			append([]any{state, micros(ts)}, scopeArgs(scope, agentID)...)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, store.ErrNotFound)
		}
		return insertEvents(ctx, tx, []store.Event{ev}, func(i int, id int64) { ev.ID = id })
	})
	if err != nil {
		return store.Event{}, fail("set agent state", err)
	}
	return ev, nil
}

// ListAgentsWithWork returns every agent, in every scope, with unread
// messages or a running run. Group runs (empty agent_id) are no agent's work.
func (s *Store) ListAgentsWithWork(ctx context.Context) ([]store.AgentRef, error) {
	refs := []store.AgentRef{}
	err := queryRows(ctx, s.r, `SELECT org_id, user_id, project_id, agent_id FROM messages WHERE status = 'unread' AND agent_id <> ''
		UNION
		SELECT org_id, user_id, project_id, agent_id FROM runs WHERE status = 'running' AND agent_id <> ''
		ORDER BY 1, 2, 3, 4`, nil, func(rows *sql.Rows) error {
		var r store.AgentRef
		err := rows.Scan(&r.Scope.OrgID, &r.Scope.UserID, &r.Scope.ProjectID, &r.AgentID)
		refs = append(refs, r)
		return err
	})
	if err != nil {
		return nil, fail("list agents with work", err)
	}
	return refs, nil
}

// CountUnreadMessages counts the unread messages of every agent in every
// scope (over the partial index of unread messages).
func (s *Store) CountUnreadMessages(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE status = 'unread' AND agent_id <> ''`).Scan(&n); err != nil {
		return 0, fail("count unread messages", err)
	}
	return n, nil
}

// HasWork reports whether the agent has unread messages or a running run,
// and no run waiting for an approval (which holds everything behind it).
func (s *Store) HasWork(ctx context.Context, scope store.Scope, agentID string) (bool, error) {
	var has bool
	err := s.r.QueryRowContext(ctx, `SELECT (EXISTS (SELECT 1 FROM messages
			WHERE `+scopeCond+` AND agent_id = ? AND status = 'unread')
		OR EXISTS (SELECT 1 FROM runs
			WHERE `+scopeCond+` AND agent_id = ? AND status = 'running'))
		AND NOT EXISTS (SELECT 1 FROM runs
			WHERE `+scopeCond+` AND agent_id = ? AND status = 'waiting_approval')`,
		append(append(scopeArgs(scope, agentID), scopeArgs(scope, agentID)...), scopeArgs(scope, agentID)...)...).Scan(&has)
	if err != nil {
		return false, fail("has work", err)
	}
	return has, nil
}

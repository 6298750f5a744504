package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/openintern/openintern/store"
)

// Team writes run in the single writer's IMMEDIATE transactions, so the
// checks they make (a group's lead, a role's members) cannot race another
// write.

const roleCols = `org_id, user_id, project_id, role_id, name, description, system_prompt, model,
	allowed_tools, skills, is_lead, created_at, updated_at`

func scanRole(row scanner) (store.Role, error) {
	var r store.Role
	var tools sql.NullString
	var skills string
	var created, updated int64
	err := row.Scan(&r.Scope.OrgID, &r.Scope.UserID, &r.Scope.ProjectID, &r.ID, &r.Name, &r.Description,
		&r.SystemPrompt, &r.Model, &tools, &skills, &r.IsLead, &created, &updated)
	if err != nil {
		return store.Role{}, err
	}
	r.CreatedAt, r.UpdatedAt = fromMicros(created), fromMicros(updated)
	if tools.Valid {
		r.AllowedTools = []string{}
		if err := json.Unmarshal([]byte(tools.String), &r.AllowedTools); err != nil {
			return store.Role{}, fmt.Errorf("decode allowed tools: %w", err)
		}
	}
	r.Skills = []string{}
	if skills != "" {
		if err := json.Unmarshal([]byte(skills), &r.Skills); err != nil {
			return store.Role{}, fmt.Errorf("decode skills: %w", err)
		}
	}
	return r, nil
}

// allowedToolsArg is the column value of a role's tools: NULL for nil
// (inherit), a JSON list otherwise.
func allowedToolsArg(tools []string) (sql.NullString, error) {
	if tools == nil {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(tools)
	if err != nil {
		return sql.NullString{}, err
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

func getRole(ctx context.Context, db queryRower, scope store.Scope, roleID string) (store.Role, error) {
	return scanRole(db.QueryRowContext(ctx, `SELECT `+roleCols+` FROM roles WHERE `+scopeCond+` AND role_id = ?`,
		scopeArgs(scope, roleID)...))
}

// CreateRole stores a new role; ErrConflict when its id is taken in the scope.
func (s *Store) CreateRole(ctx context.Context, r store.Role) (store.Role, error) {
	if err := store.CheckScope(r.Scope); err != nil {
		return store.Role{}, fmt.Errorf("sqlite: create role: %w", err)
	}
	if r.ID == "" {
		return store.Role{}, errors.New("sqlite: create role: role id is empty")
	}
	tools, err := allowedToolsArg(r.AllowedTools)
	if err != nil {
		return store.Role{}, fmt.Errorf("sqlite: create role: %w", err)
	}
	skills, err := store.ToolsJSON(r.Skills)
	if err != nil {
		return store.Role{}, fmt.Errorf("sqlite: create role: %w", err)
	}
	ts := micros(s.now())
	var out store.Role
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO roles (org_id, user_id, project_id, role_id, name, description,
				system_prompt, model, allowed_tools, is_lead, created_at, updated_at, skills)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			scopeArgs(r.Scope, r.ID, r.Name, r.Description, r.SystemPrompt, r.Model, tools, r.IsLead, ts, ts, skills)...); err != nil {
			return err
		}
		out, err = getRole(ctx, tx, r.Scope, r.ID)
		return err
	})
	if err != nil {
		return store.Role{}, fail("create role", err)
	}
	return out, nil
}

// GetRole returns one role.
func (s *Store) GetRole(ctx context.Context, scope store.Scope, roleID string) (store.Role, error) {
	r, err := getRole(ctx, s.r, scope, roleID)
	if err != nil {
		return store.Role{}, fail("get role", err)
	}
	return r, nil
}

// ListRoles returns a page of the scope's roles, oldest first, and how many there are.
func (s *Store) ListRoles(ctx context.Context, scope store.Scope, page store.Page) ([]store.Role, int, error) {
	limit, offset := store.PageBounds(page)
	roles, total, err := listPage(ctx, s, `SELECT count(*) FROM roles WHERE `+scopeCond, scopeArgs(scope),
		`SELECT `+roleCols+` FROM roles WHERE `+scopeCond+` ORDER BY created_at, role_id LIMIT ? OFFSET ?`,
		scopeArgs(scope, limit, offset), scanRole)
	if err != nil {
		return nil, 0, fail("list roles", err)
	}
	return roles, total, nil
}

// leadConflictSQL finds whether making role ? a lead role would give a group
// two leads: a group with two members of the role, or with a member of the
// role and a member of another lead role. Its arguments are
// scopeArgs(scope, roleID) twice.
const leadConflictSQL = `SELECT EXISTS (
		SELECT 1 FROM group_members WHERE ` + scopeCond + ` AND role_id = ?
		GROUP BY group_id HAVING count(*) > 1)
	OR EXISTS (
		SELECT 1 FROM group_members a
		JOIN group_members b ON b.org_id = a.org_id AND b.user_id = a.user_id AND b.project_id = a.project_id
			AND b.group_id = a.group_id AND b.agent_id <> a.agent_id AND b.role_id <> a.role_id
		JOIN roles r ON r.org_id = b.org_id AND r.user_id = b.user_id AND r.project_id = b.project_id
			AND r.role_id = b.role_id AND r.is_lead
		WHERE a.org_id = ? AND a.user_id = ? AND a.project_id = ? AND a.role_id = ?)`

// UpdateRole applies the non-nil fields of patch and bumps updated_at.
// ErrLeadExists when making the role a lead role would give a group two leads.
func (s *Store) UpdateRole(ctx context.Context, scope store.Scope, roleID string, patch store.RolePatch) (store.Role, error) {
	var out store.Role
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		r, err := getRole(ctx, tx, scope, roleID)
		if err != nil {
			return err
		}
		wasLead := r.IsLead
		store.ApplyRolePatch(&r, patch)
		if r.IsLead && !wasLead {
			var conflict bool
			if err := tx.QueryRowContext(ctx, leadConflictSQL,
				append(scopeArgs(scope, roleID), scopeArgs(scope, roleID)...)...).Scan(&conflict); err != nil {
				return err
			}
			if conflict {
				return fmt.Errorf("role %s: %w", roleID, store.ErrLeadExists)
			}
		}
		tools, err := allowedToolsArg(r.AllowedTools)
		if err != nil {
			return err
		}
		skills, err := store.ToolsJSON(r.Skills)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE roles SET name = ?, description = ?, system_prompt = ?, model = ?,
				allowed_tools = ?, is_lead = ?, updated_at = ?, skills = ?
			WHERE `+scopeCond+` AND role_id = ?`,
			append([]any{r.Name, r.Description, r.SystemPrompt, r.Model, tools, r.IsLead, micros(s.now()), skills},
				scopeArgs(scope, roleID)...)...); err != nil {
			return err
		}
		out, err = getRole(ctx, tx, scope, roleID)
		return err
	})
	if err != nil {
		return store.Role{}, fail("update role", err)
	}
	return out, nil
}

// DeleteRole deletes the role; ErrInUse when a member has it, unless
// cascade, which removes those memberships in the same transaction.
func (s *Store) DeleteRole(ctx context.Context, scope store.Scope, roleID string, cascade bool) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := getRole(ctx, tx, scope, roleID); err != nil {
			return err
		}
		var members int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM group_members WHERE `+scopeCond+` AND role_id = ?`,
			scopeArgs(scope, roleID)...).Scan(&members); err != nil {
			return err
		}
		if members > 0 && !cascade {
			return fmt.Errorf("role %s has %d members: %w", roleID, members, store.ErrInUse)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE `+scopeCond+` AND role_id = ?`,
			scopeArgs(scope, roleID)...); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM roles WHERE `+scopeCond+` AND role_id = ?`, scopeArgs(scope, roleID)...)
		return err
	})
	return fail("delete role", err)
}

// groupCols are the columns scanGroup reads, the member count last.
const groupCols = `g.org_id, g.user_id, g.project_id, g.group_id, g.name, g.description, g.created_at, g.updated_at,
	(SELECT count(*) FROM group_members gm WHERE gm.org_id = g.org_id AND gm.user_id = g.user_id
		AND gm.project_id = g.project_id AND gm.group_id = g.group_id)`

const groupScopeCond = `g.org_id = ? AND g.user_id = ? AND g.project_id = ?`

func scanGroup(row scanner) (store.Group, error) {
	var g store.Group
	var created, updated int64
	err := row.Scan(&g.Scope.OrgID, &g.Scope.UserID, &g.Scope.ProjectID, &g.ID, &g.Name, &g.Description,
		&created, &updated, &g.Members)
	if err != nil {
		return store.Group{}, err
	}
	g.CreatedAt, g.UpdatedAt = fromMicros(created), fromMicros(updated)
	return g, nil
}

func getGroup(ctx context.Context, db queryRower, scope store.Scope, groupID string) (store.Group, error) {
	return scanGroup(db.QueryRowContext(ctx, `SELECT `+groupCols+` FROM agent_groups g
		WHERE `+groupScopeCond+` AND g.group_id = ?`, scopeArgs(scope, groupID)...))
}

// CreateGroup stores a new group; ErrConflict when its id is taken in the scope.
func (s *Store) CreateGroup(ctx context.Context, g store.Group) (store.Group, error) {
	if err := store.CheckScope(g.Scope); err != nil {
		return store.Group{}, fmt.Errorf("sqlite: create group: %w", err)
	}
	if g.ID == "" {
		return store.Group{}, errors.New("sqlite: create group: group id is empty")
	}
	ts := micros(s.now())
	var out store.Group
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO agent_groups (org_id, user_id, project_id, group_id, name,
				description, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, scopeArgs(g.Scope, g.ID, g.Name, g.Description, ts, ts)...); err != nil {
			return err
		}
		var err error
		out, err = getGroup(ctx, tx, g.Scope, g.ID)
		return err
	})
	if err != nil {
		return store.Group{}, fail("create group", err)
	}
	return out, nil
}

// GetGroup returns one group with its member count.
func (s *Store) GetGroup(ctx context.Context, scope store.Scope, groupID string) (store.Group, error) {
	g, err := getGroup(ctx, s.r, scope, groupID)
	if err != nil {
		return store.Group{}, fail("get group", err)
	}
	return g, nil
}

// ListGroups returns a page of the scope's groups, oldest first, and how many there are.
func (s *Store) ListGroups(ctx context.Context, scope store.Scope, page store.Page) ([]store.Group, int, error) {
	limit, offset := store.PageBounds(page)
	groups, total, err := listPage(ctx, s, `SELECT count(*) FROM agent_groups WHERE `+scopeCond, scopeArgs(scope),
		`SELECT `+groupCols+` FROM agent_groups g WHERE `+groupScopeCond+` ORDER BY g.created_at, g.group_id LIMIT ? OFFSET ?`,
		scopeArgs(scope, limit, offset), scanGroup)
	if err != nil {
		return nil, 0, fail("list groups", err)
	}
	return groups, total, nil
}

// UpdateGroup applies the non-nil fields of patch and bumps updated_at.
func (s *Store) UpdateGroup(ctx context.Context, scope store.Scope, groupID string, patch store.GroupPatch) (store.Group, error) {
	var out store.Group
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE agent_groups SET
				name = COALESCE(?, name),
				description = COALESCE(?, description),
				updated_at = ?
			WHERE `+scopeCond+` AND group_id = ?`,
			append([]any{patch.Name, patch.Description, micros(s.now())}, scopeArgs(scope, groupID)...)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, store.ErrNotFound)
		}
		out, err = getGroup(ctx, tx, scope, groupID)
		return err
	})
	if err != nil {
		return store.Group{}, fail("update group", err)
	}
	return out, nil
}

// DeleteGroup deletes the group and its memberships in one transaction.
func (s *Store) DeleteGroup(ctx context.Context, scope store.Scope, groupID string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM agent_groups WHERE `+scopeCond+` AND group_id = ?`,
			scopeArgs(scope, groupID)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, store.ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM group_members WHERE `+scopeCond+` AND group_id = ?`,
			scopeArgs(scope, groupID)...)
		return err
	})
	return fail("delete group", err)
}

// memberSelect reads members gm with their role's name and lead flag.
const memberSelect = `SELECT gm.org_id, gm.user_id, gm.project_id, gm.group_id, gm.agent_id, gm.role_id,
		COALESCE(r.name, ''), COALESCE(r.is_lead, 0), gm.created_at, gm.updated_at
	FROM group_members gm
	LEFT JOIN roles r ON r.org_id = gm.org_id AND r.user_id = gm.user_id AND r.project_id = gm.project_id
		AND r.role_id = gm.role_id
	WHERE gm.org_id = ? AND gm.user_id = ? AND gm.project_id = ?`

func scanMember(row scanner) (store.GroupMember, error) {
	var m store.GroupMember
	var created, updated int64
	err := row.Scan(&m.Scope.OrgID, &m.Scope.UserID, &m.Scope.ProjectID, &m.GroupID, &m.AgentID, &m.RoleID,
		&m.RoleName, &m.IsLead, &created, &updated)
	if err != nil {
		return store.GroupMember{}, err
	}
	m.MemberID = m.AgentID
	m.CreatedAt, m.UpdatedAt = fromMicros(created), fromMicros(updated)
	return m, nil
}

func getMember(ctx context.Context, db queryRower, scope store.Scope, groupID, agentID string) (store.GroupMember, error) {
	return scanMember(db.QueryRowContext(ctx, memberSelect+` AND gm.group_id = ? AND gm.agent_id = ?`,
		scopeArgs(scope, groupID, agentID)...))
}

func queryMembers(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args []any) ([]store.GroupMember, error) {
	members := []store.GroupMember{}
	err := queryRows(ctx, db, query, args, func(rows *sql.Rows) error {
		m, err := scanMember(rows)
		members = append(members, m)
		return err
	})
	return members, err
}

// checkMemberRole checks, in a write transaction, that the group and the role
// exist and that giving agentID the role leaves the group one lead at most.
func checkMemberRole(ctx context.Context, tx *sql.Tx, scope store.Scope, groupID, agentID, roleID string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM agent_groups WHERE `+scopeCond+` AND group_id = ?`,
		scopeArgs(scope, groupID)...).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("group %s: %w", groupID, store.ErrNotFound)
	}
	role, err := getRole(ctx, tx, scope, roleID)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("role %s: %w", roleID, store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if !role.IsLead {
		return nil
	}
	var lead bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM group_members gm
			JOIN roles r ON r.org_id = gm.org_id AND r.user_id = gm.user_id AND r.project_id = gm.project_id
				AND r.role_id = gm.role_id AND r.is_lead
			WHERE gm.org_id = ? AND gm.user_id = ? AND gm.project_id = ? AND gm.group_id = ? AND gm.agent_id <> ?)`,
		scopeArgs(scope, groupID, agentID)...).Scan(&lead); err != nil {
		return err
	}
	if lead {
		return fmt.Errorf("group %s: %w", groupID, store.ErrLeadExists)
	}
	return nil
}

// checkNewMember validates a member to add, filling AgentID from MemberID.
func checkNewMember(m *store.GroupMember) error {
	if err := store.CheckScope(m.Scope); err != nil {
		return err
	}
	if m.AgentID == "" {
		m.AgentID = m.MemberID
	}
	if m.GroupID == "" || m.AgentID == "" || m.RoleID == "" {
		return errors.New("a member needs a group id, an agent id and a role id")
	}
	return nil
}

// addMember adds m in the write transaction tx.
func addMember(ctx context.Context, tx *sql.Tx, m store.GroupMember, now time.Time) (store.GroupMember, error) {
	_, err := getMember(ctx, tx, m.Scope, m.GroupID, m.AgentID)
	if err == nil {
		return store.GroupMember{}, fmt.Errorf("agent %s is a member of group %s: %w", m.AgentID, m.GroupID, store.ErrConflict)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.GroupMember{}, err
	}
	if err := checkMemberRole(ctx, tx, m.Scope, m.GroupID, m.AgentID, m.RoleID); err != nil {
		return store.GroupMember{}, err
	}
	ts := micros(now)
	if _, err := tx.ExecContext(ctx, `INSERT INTO group_members (org_id, user_id, project_id, group_id, agent_id,
			role_id, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, scopeArgs(m.Scope, m.GroupID, m.AgentID, m.RoleID, ts, ts)...); err != nil {
		return store.GroupMember{}, err
	}
	return getMember(ctx, tx, m.Scope, m.GroupID, m.AgentID)
}

// AddMember adds an agent to a group with a role.
func (s *Store) AddMember(ctx context.Context, m store.GroupMember) (store.GroupMember, error) {
	if err := checkNewMember(&m); err != nil {
		return store.GroupMember{}, fmt.Errorf("sqlite: add member: %w", err)
	}
	var out store.GroupMember
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = addMember(ctx, tx, m, s.now())
		return err
	})
	if err != nil {
		return store.GroupMember{}, fail("add member", err)
	}
	return out, nil
}

// CreateGroupWithMembers stores the group and its members in one write
// transaction; nothing is stored on any error.
func (s *Store) CreateGroupWithMembers(ctx context.Context, g store.Group, members []store.GroupMember) (store.Group, []store.GroupMember, error) {
	if err := store.CheckScope(g.Scope); err != nil {
		return store.Group{}, nil, fmt.Errorf("sqlite: create group: %w", err)
	}
	if g.ID == "" {
		return store.Group{}, nil, errors.New("sqlite: create group: group id is empty")
	}
	members = append([]store.GroupMember(nil), members...) // the caller's stay as they are
	for i := range members {
		members[i].Scope, members[i].GroupID = g.Scope, g.ID
		if err := checkNewMember(&members[i]); err != nil {
			return store.Group{}, nil, fmt.Errorf("sqlite: create group: %w", err)
		}
	}
	var out store.Group
	added := make([]store.GroupMember, 0, len(members))
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		ts := micros(s.now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO agent_groups (org_id, user_id, project_id, group_id, name,
				description, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, scopeArgs(g.Scope, g.ID, g.Name, g.Description, ts, ts)...); err != nil {
			return err
		}
		for _, m := range members {
			am, err := addMember(ctx, tx, m, s.now())
			if err != nil {
				return err
			}
			added = append(added, am)
		}
		var err error
		out, err = getGroup(ctx, tx, g.Scope, g.ID)
		return err
	})
	if err != nil {
		return store.Group{}, nil, fail("create group", err)
	}
	return out, added, nil
}

// GetMember returns one member of a group.
func (s *Store) GetMember(ctx context.Context, scope store.Scope, groupID, agentID string) (store.GroupMember, error) {
	m, err := getMember(ctx, s.r, scope, groupID, agentID)
	if err != nil {
		return store.GroupMember{}, fail("get member", err)
	}
	return m, nil
}

// ListMembers returns a group's members, oldest first; ErrNotFound when the
// group does not exist.
func (s *Store) ListMembers(ctx context.Context, scope store.Scope, groupID string) ([]store.GroupMember, error) {
	var members []store.GroupMember
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM agent_groups WHERE `+scopeCond+` AND group_id = ?`,
			scopeArgs(scope, groupID)...).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("group %s: %w", groupID, store.ErrNotFound)
		}
		var err error
		members, err = queryMembers(ctx, tx, memberSelect+` AND gm.group_id = ? ORDER BY gm.created_at, gm.agent_id`,
			scopeArgs(scope, groupID))
		return err
	})
	if err != nil {
		return nil, fail("list members", err)
	}
	return members, nil
}

// UpdateMember gives a member another role.
func (s *Store) UpdateMember(ctx context.Context, scope store.Scope, groupID, agentID, roleID string) (store.GroupMember, error) {
	var out store.GroupMember
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := getMember(ctx, tx, scope, groupID, agentID); err != nil {
			return err
		}
		if err := checkMemberRole(ctx, tx, scope, groupID, agentID, roleID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE group_members SET role_id = ?, updated_at = ?
			WHERE `+scopeCond+` AND group_id = ? AND agent_id = ?`,
			append([]any{roleID, micros(s.now())}, scopeArgs(scope, groupID, agentID)...)...); err != nil {
			return err
		}
		var err error
		out, err = getMember(ctx, tx, scope, groupID, agentID)
		return err
	})
	if err != nil {
		return store.GroupMember{}, fail("update member", err)
	}
	return out, nil
}

// RemoveMember removes an agent from a group.
func (s *Store) RemoveMember(ctx context.Context, scope store.Scope, groupID, agentID string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE `+scopeCond+` AND group_id = ? AND agent_id = ?`,
			scopeArgs(scope, groupID, agentID)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, store.ErrNotFound)
		}
		return nil
	})
	return fail("remove member", err)
}

// AgentMemberships lists the agent's memberships in the scope's groups, oldest first.
func (s *Store) AgentMemberships(ctx context.Context, scope store.Scope, agentID string) ([]store.GroupMember, error) {
	members, err := queryMembers(ctx, s.r, memberSelect+` AND gm.agent_id = ? ORDER BY gm.created_at, gm.group_id`,
		scopeArgs(scope, agentID))
	if err != nil {
		return nil, fail("agent memberships", err)
	}
	return members, nil
}

// RemoveAgentMemberships removes the agent from every group of the scope.
func (s *Store) RemoveAgentMemberships(ctx context.Context, scope store.Scope, agentID string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE `+scopeCond+` AND agent_id = ?`,
			scopeArgs(scope, agentID)...)
		return err
	})
	return fail("remove agent memberships", err)
}

// CountChildren counts the scope's agents whose parent is parentID.
func (s *Store) CountChildren(ctx context.Context, scope store.Scope, parentID string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM agents WHERE `+scopeCond+` AND parent_id = ?`,
		scopeArgs(scope, parentID)...).Scan(&n)
	if err != nil {
		return 0, fail("count children", err)
	}
	return n, nil
}

// CreateGroupRun stores a running group run, its first checkpoint and its
// events in one transaction; ErrConflict when the run id is taken.
func (s *Store) CreateGroupRun(ctx context.Context, r store.Run, cp store.Checkpoint, events []store.Event) (store.Run, []store.Event, error) {
	if err := store.CheckScope(r.Scope); err != nil {
		return store.Run{}, nil, fmt.Errorf("sqlite: create group run: %w", err)
	}
	if r.ID == "" || r.GroupID == "" {
		return store.Run{}, nil, errors.New("sqlite: create group run: a group run needs a run id and a group id")
	}
	if r.AgentID != "" {
		return store.Run{}, nil, errors.New("sqlite: create group run: a group run has no agent id")
	}
	var state sql.NullString
	if len(cp.State) > 0 {
		if !json.Valid(cp.State) {
			return store.Run{}, nil, errors.New("sqlite: create group run: checkpoint state is not valid JSON")
		}
		state = nullJSON(cp.State)
	}
	out, err := store.RunEvents(r.Scope, r.ID, events, s.now())
	if err != nil {
		return store.Run{}, nil, fmt.Errorf("sqlite: create group run: %w", err)
	}
	store.FillFromRun(out, "", r.GroupID)
	var run store.Run
	err = s.fencedTx(ctx, func(tx *sql.Tx) error {
		ts := micros(s.now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO runs (org_id, user_id, project_id, run_id, agent_id, session_key,
				group_id, parent_run_id, role_id, input, status, steps, created_at, started_at)
			VALUES (?, ?, ?, ?, '', ?, ?, ?, ?, ?, 'running', ?, ?, ?)`,
			scopeArgs(r.Scope, r.ID, r.SessionKey, r.GroupID, r.ParentRunID, r.RoleID, r.Input, cp.Step, ts, ts)...); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (org_id, user_id, project_id, run_id, step, state, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, scopeArgs(r.Scope, r.ID, cp.Step, state, ts)...); err != nil {
			return err
		}
		if err := insertRunEvents(ctx, tx, r.Scope, r.ID, out); err != nil {
			return err
		}
		var err error
		run, err = getRun(ctx, tx, r.Scope, r.ID)
		return err
	})
	if err != nil {
		return store.Run{}, nil, fail("create group run", err)
	}
	return run, out, nil
}

// ActiveGroupRuns lists the running group runs of every scope.
func (s *Store) ActiveGroupRuns(ctx context.Context) ([]store.Run, error) {
	runs := []store.Run{}
	err := queryRows(ctx, s.r, `SELECT `+runCols+` FROM runs WHERE status = 'running' AND agent_id = ''
		ORDER BY org_id, user_id, project_id, created_at, run_id`, nil, func(rows *sql.Rows) error {
		r, err := scanRun(rows)
		runs = append(runs, r)
		return err
	})
	if err != nil {
		return nil, fail("active group runs", err)
	}
	return runs, nil
}

// GetCheckpoint returns the run's checkpoint; ErrNotFound when it has none.
func (s *Store) GetCheckpoint(ctx context.Context, scope store.Scope, runID string) (store.Checkpoint, error) {
	cp, err := getCheckpoint(ctx, s.r, scope, runID)
	if err == nil && cp == nil {
		err = sql.ErrNoRows
	}
	if err != nil {
		return store.Checkpoint{}, fail("get checkpoint", err)
	}
	return *cp, nil
}

// RunStats summarises the scope's runs the filter selects.
func (s *Store) RunStats(ctx context.Context, scope store.Scope, filter store.RunFilter) (store.RunStats, error) {
	cond, args, err := runFilterCond(scope, filter)
	if err != nil {
		return store.RunStats{}, fmt.Errorf("sqlite: run stats: %w", err)
	}
	var st store.RunStats
	var latency sql.NullFloat64
	err = s.r.QueryRowContext(ctx, `SELECT count(*),
			COALESCE(sum(status = 'completed'), 0),
			COALESCE(sum(status = 'failed'), 0),
			COALESCE(sum(status = 'cancelled'), 0),
			COALESCE(sum(status IN ('pending', 'running', 'waiting_approval')), 0),
			COALESCE(sum(COALESCE(json_extract(usage, '$.total_tokens'), 0)), 0),
			avg(CASE WHEN status IN ('completed', 'failed', 'cancelled') AND ended_at IS NOT NULL
				THEN (ended_at - COALESCE(started_at, created_at)) / 1000.0 END)
		FROM runs WHERE `+cond, args...).Scan(&st.Runs, &st.Completed, &st.Failed, &st.Cancelled, &st.Active,
		&st.Tokens, &latency)
	if err != nil {
		return store.RunStats{}, fail("run stats", err)
	}
	if finished := st.Completed + st.Failed + st.Cancelled; finished > 0 {
		st.SuccessRate = float64(st.Completed) / float64(finished)
	}
	st.MeanLatencyMS = latency.Float64
	return st, nil
}

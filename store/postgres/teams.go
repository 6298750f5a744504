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

// Team writes are rare; they commit synchronously, and those whose checks
// read other rows (a group's lead, a role's members, a member's group and
// role) hold a transaction advisory lock on the scope's teams, so that two
// writers cannot both pass a check the other's write would fail.

// teamLockKey is the advisory lock that serialises a scope's team writes.
// It hashes differently from agentLockKey's (scope, agent) tuples; a
// collision would only make one wait for the other.
func teamLockKey(scope store.Scope) int64 {
	h := fnv.New64a()
	for _, part := range []string{"teams", scope.OrgID, scope.UserID, scope.ProjectID} {
		_, _ = h.Write([]byte(part))
		_, _ = h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

// teamTx runs fn in a transaction that holds the scope's team lock.
func (s *Store) teamTx(ctx context.Context, scope store.Scope, fn func(tx pgx.Tx) error) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, teamLockKey(scope)); err != nil {
			return err
		}
		return fn(tx)
	})
}

const roleCols = `org_id, user_id, project_id, role_id, name, description, system_prompt, model,
	allowed_tools, skills, is_lead, created_at, updated_at`

func scanRole(row pgx.Row) (store.Role, error) {
	var r store.Role
	var tools, skills []byte
	err := row.Scan(&r.Scope.OrgID, &r.Scope.UserID, &r.Scope.ProjectID, &r.ID, &r.Name, &r.Description,
		&r.SystemPrompt, &r.Model, &tools, &skills, &r.IsLead, &r.CreatedAt, &r.UpdatedAt)
	if err != nil {
		return store.Role{}, err
	}
	r.CreatedAt, r.UpdatedAt = utc(r.CreatedAt), utc(r.UpdatedAt)
	if tools != nil {
		r.AllowedTools = []string{}
		if err := json.Unmarshal(tools, &r.AllowedTools); err != nil {
			return store.Role{}, fmt.Errorf("decode allowed tools: %w", err)
		}
	}
	r.Skills = []string{}
	if len(skills) > 0 {
		if err := json.Unmarshal(skills, &r.Skills); err != nil {
			return store.Role{}, fmt.Errorf("decode skills: %w", err)
		}
	}
	return r, nil
}

// allowedToolsArg is the column value of a role's tools: NULL for nil
// (inherit), a JSON list otherwise.
func allowedToolsArg(tools []string) (*string, error) {
	if tools == nil {
		return nil, nil
	}
	b, err := json.Marshal(tools)
	if err != nil {
		return nil, err
	}
	v := string(b)
	return &v, nil
}

func getRole(ctx context.Context, db dbtx, scope store.Scope, roleID string, forUpdate bool) (store.Role, error) {
	lock := ""
	if forUpdate {
		lock = " FOR UPDATE"
	}
	return scanRole(db.QueryRow(ctx, `SELECT `+roleCols+` FROM roles
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND role_id = $4`+lock,
		scope.OrgID, scope.UserID, scope.ProjectID, roleID))
}

// CreateRole stores a new role; ErrConflict when its id is taken in the scope.
func (s *Store) CreateRole(ctx context.Context, r store.Role) (store.Role, error) {
	if err := store.CheckScope(r.Scope); err != nil {
		return store.Role{}, fmt.Errorf("postgres: create role: %w", err)
	}
	if r.ID == "" {
		return store.Role{}, errors.New("postgres: create role: role id is empty")
	}
	tools, err := allowedToolsArg(r.AllowedTools)
	if err != nil {
		return store.Role{}, fmt.Errorf("postgres: create role: %w", err)
	}
	skills, err := store.ToolsJSON(r.Skills)
	if err != nil {
		return store.Role{}, fmt.Errorf("postgres: create role: %w", err)
	}
	out, err := scanRole(s.pool.QueryRow(ctx, `INSERT INTO roles (org_id, user_id, project_id, role_id, name,
			description, system_prompt, model, allowed_tools, is_lead, created_at, updated_at, skills)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $11, $12::jsonb)
		RETURNING `+roleCols,
		r.Scope.OrgID, r.Scope.UserID, r.Scope.ProjectID, r.ID, r.Name, r.Description, r.SystemPrompt, r.Model,
		tools, r.IsLead, s.now(), skills))
	if err != nil {
		return store.Role{}, s.fail(ctx, "create role", err)
	}
	return out, nil
}

// GetRole returns one role.
func (s *Store) GetRole(ctx context.Context, scope store.Scope, roleID string) (store.Role, error) {
	r, err := getRole(ctx, s.pool, scope, roleID, false)
	if err != nil {
		return store.Role{}, s.fail(ctx, "get role", err)
	}
	return r, nil
}

// listPage runs a count and a page query in one batch and scans the page's rows.
func listPage[T any](ctx context.Context, s *Store, countSQL, pageSQL string, countArgs, pageArgs []any,
	scan func(pgx.Row) (T, error)) ([]T, int, error) {
	b := &pgx.Batch{}
	b.Queue(countSQL, countArgs...)
	b.Queue(pageSQL, pageArgs...)
	var total int
	out := []T{}
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
		items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
		if err != nil {
			return err
		}
		out = append(out, items...)
		return br.Close()
	}()
	return out, total, err
}

// ListRoles returns a page of the scope's roles, oldest first, and how many there are.
func (s *Store) ListRoles(ctx context.Context, scope store.Scope, page store.Page) ([]store.Role, int, error) {
	limit, offset := store.PageBounds(page)
	sc := []any{scope.OrgID, scope.UserID, scope.ProjectID}
	roles, total, err := listPage(ctx, s,
		`SELECT count(*) FROM roles WHERE org_id = $1 AND user_id = $2 AND project_id = $3`,
		`SELECT `+roleCols+` FROM roles WHERE org_id = $1 AND user_id = $2 AND project_id = $3
			ORDER BY created_at, role_id LIMIT $4 OFFSET $5`,
		sc, append(sc, limit, offset), scanRole)
	if err != nil {
		return nil, 0, s.fail(ctx, "list roles", err)
	}
	return roles, total, nil
}

// leadConflictSQL finds whether making role $4 a lead role would give a
// group two leads: a group with two members of the role, or with a member of
// the role and a member of another lead role.
const leadConflictSQL = `SELECT EXISTS (
		SELECT 1 FROM group_members
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND role_id = $4
		GROUP BY group_id HAVING count(*) > 1)
	OR EXISTS (
		SELECT 1 FROM group_members a
		JOIN group_members b ON b.org_id = a.org_id AND b.user_id = a.user_id AND b.project_id = a.project_id
			AND b.group_id = a.group_id AND b.agent_id <> a.agent_id AND b.role_id <> a.role_id
		JOIN roles r ON r.org_id = b.org_id AND r.user_id = b.user_id AND r.project_id = b.project_id
			AND r.role_id = b.role_id AND r.is_lead
		WHERE a.org_id = $1 AND a.user_id = $2 AND a.project_id = $3 AND a.role_id = $4)`

// UpdateRole applies the non-nil fields of patch and bumps updated_at.
// ErrLeadExists when making the role a lead role would give a group two leads.
func (s *Store) UpdateRole(ctx context.Context, scope store.Scope, roleID string, patch store.RolePatch) (store.Role, error) {
	var out store.Role
	err := s.teamTx(ctx, scope, func(tx pgx.Tx) error {
		r, err := getRole(ctx, tx, scope, roleID, true)
		if err != nil {
			return err
		}
		wasLead := r.IsLead
		store.ApplyRolePatch(&r, patch)
		if r.IsLead && !wasLead {
			var conflict bool
			if err := tx.QueryRow(ctx, leadConflictSQL, scope.OrgID, scope.UserID, scope.ProjectID, roleID).Scan(&conflict); err != nil {
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
		out, err = scanRole(tx.QueryRow(ctx, `UPDATE roles SET name = $5, description = $6, system_prompt = $7,
				model = $8, allowed_tools = $9::jsonb, is_lead = $10, updated_at = $11, skills = $12::jsonb
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND role_id = $4
			RETURNING `+roleCols,
			scope.OrgID, scope.UserID, scope.ProjectID, roleID, r.Name, r.Description, r.SystemPrompt, r.Model,
			tools, r.IsLead, s.now(), skills))
		return err
	})
	if err != nil {
		return store.Role{}, s.fail(ctx, "update role", err)
	}
	return out, nil
}

// DeleteRole deletes the role; ErrInUse when a member has it, unless
// cascade, which removes those memberships in the same transaction.
func (s *Store) DeleteRole(ctx context.Context, scope store.Scope, roleID string, cascade bool) error {
	err := s.teamTx(ctx, scope, func(tx pgx.Tx) error {
		if _, err := getRole(ctx, tx, scope, roleID, true); err != nil {
			return err
		}
		var members int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM group_members
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND role_id = $4`,
			scope.OrgID, scope.UserID, scope.ProjectID, roleID).Scan(&members); err != nil {
			return err
		}
		if members > 0 && !cascade {
			return fmt.Errorf("role %s has %d members: %w", roleID, members, store.ErrInUse)
		}
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM group_members WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND role_id = $4`,
			scope.OrgID, scope.UserID, scope.ProjectID, roleID)
		b.Queue(`DELETE FROM roles WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND role_id = $4`,
			scope.OrgID, scope.UserID, scope.ProjectID, roleID)
		return tx.SendBatch(ctx, b).Close()
	})
	return s.fail(ctx, "delete role", err)
}

// groupCols are the columns of agent_groups g that scanGroup reads, the
// member count last.
const groupCols = `g.org_id, g.user_id, g.project_id, g.group_id, g.name, g.description, g.created_at, g.updated_at,
	(SELECT count(*) FROM group_members gm WHERE gm.org_id = g.org_id AND gm.user_id = g.user_id
		AND gm.project_id = g.project_id AND gm.group_id = g.group_id)`

func scanGroup(row pgx.Row) (store.Group, error) {
	var g store.Group
	err := row.Scan(&g.Scope.OrgID, &g.Scope.UserID, &g.Scope.ProjectID, &g.ID, &g.Name, &g.Description,
		&g.CreatedAt, &g.UpdatedAt, &g.Members)
	if err != nil {
		return store.Group{}, err
	}
	g.CreatedAt, g.UpdatedAt = utc(g.CreatedAt), utc(g.UpdatedAt)
	return g, nil
}

func getGroup(ctx context.Context, db dbtx, scope store.Scope, groupID string) (store.Group, error) {
	return scanGroup(db.QueryRow(ctx, `SELECT `+groupCols+` FROM agent_groups g
		WHERE g.org_id = $1 AND g.user_id = $2 AND g.project_id = $3 AND g.group_id = $4`,
		scope.OrgID, scope.UserID, scope.ProjectID, groupID))
}

// CreateGroup stores a new group; ErrConflict when its id is taken in the scope.
func (s *Store) CreateGroup(ctx context.Context, g store.Group) (store.Group, error) {
	if err := store.CheckScope(g.Scope); err != nil {
		return store.Group{}, fmt.Errorf("postgres: create group: %w", err)
	}
	if g.ID == "" {
		return store.Group{}, errors.New("postgres: create group: group id is empty")
	}
	ts := s.now()
	_, err := s.pool.Exec(ctx, `INSERT INTO agent_groups (org_id, user_id, project_id, group_id, name, description,
			created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`,
		g.Scope.OrgID, g.Scope.UserID, g.Scope.ProjectID, g.ID, g.Name, g.Description, ts)
	if err != nil {
		return store.Group{}, s.fail(ctx, "create group", err)
	}
	return store.Group{Scope: g.Scope, ID: g.ID, Name: g.Name, Description: g.Description, CreatedAt: ts, UpdatedAt: ts}, nil
}

// GetGroup returns one group with its member count.
func (s *Store) GetGroup(ctx context.Context, scope store.Scope, groupID string) (store.Group, error) {
	g, err := getGroup(ctx, s.pool, scope, groupID)
	if err != nil {
		return store.Group{}, s.fail(ctx, "get group", err)
	}
	return g, nil
}

// ListGroups returns a page of the scope's groups, oldest first, and how many there are.
func (s *Store) ListGroups(ctx context.Context, scope store.Scope, page store.Page) ([]store.Group, int, error) {
	limit, offset := store.PageBounds(page)
	sc := []any{scope.OrgID, scope.UserID, scope.ProjectID}
	groups, total, err := listPage(ctx, s,
		`SELECT count(*) FROM agent_groups WHERE org_id = $1 AND user_id = $2 AND project_id = $3`,
		`SELECT `+groupCols+` FROM agent_groups g WHERE g.org_id = $1 AND g.user_id = $2 AND g.project_id = $3
			ORDER BY g.created_at, g.group_id LIMIT $4 OFFSET $5`,
		sc, append(sc, limit, offset), scanGroup)
	if err != nil {
		return nil, 0, s.fail(ctx, "list groups", err)
	}
	return groups, total, nil
}

// UpdateGroup applies the non-nil fields of patch and bumps updated_at.
func (s *Store) UpdateGroup(ctx context.Context, scope store.Scope, groupID string, patch store.GroupPatch) (store.Group, error) {
	g, err := scanGroup(s.pool.QueryRow(ctx, `UPDATE agent_groups g SET
			name = COALESCE($5, g.name),
			description = COALESCE($6, g.description),
			updated_at = $7
		WHERE g.org_id = $1 AND g.user_id = $2 AND g.project_id = $3 AND g.group_id = $4
		RETURNING `+groupCols,
		scope.OrgID, scope.UserID, scope.ProjectID, groupID, patch.Name, patch.Description, s.now()))
	if err != nil {
		return store.Group{}, s.fail(ctx, "update group", err)
	}
	return g, nil
}

// DeleteGroup deletes the group and its memberships in one transaction.
func (s *Store) DeleteGroup(ctx context.Context, scope store.Scope, groupID string) error {
	err := s.teamTx(ctx, scope, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM agent_groups
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND group_id = $4`,
			scope.OrgID, scope.UserID, scope.ProjectID, groupID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		_, err = tx.Exec(ctx, `DELETE FROM group_members
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND group_id = $4`,
			scope.OrgID, scope.UserID, scope.ProjectID, groupID)
		return err
	})
	return s.fail(ctx, "delete group", err)
}

// memberSelect reads members gm with their role's name and lead flag; $1..$3
// are the scope.
const memberSelect = `SELECT gm.org_id, gm.user_id, gm.project_id, gm.group_id, gm.agent_id, gm.role_id,
		COALESCE(r.name, ''), COALESCE(r.is_lead, false), gm.created_at, gm.updated_at
	FROM group_members gm
	LEFT JOIN roles r ON r.org_id = gm.org_id AND r.user_id = gm.user_id AND r.project_id = gm.project_id
		AND r.role_id = gm.role_id
	WHERE gm.org_id = $1 AND gm.user_id = $2 AND gm.project_id = $3`

func scanMember(row pgx.Row) (store.GroupMember, error) {
	var m store.GroupMember
	err := row.Scan(&m.Scope.OrgID, &m.Scope.UserID, &m.Scope.ProjectID, &m.GroupID, &m.AgentID, &m.RoleID,
		&m.RoleName, &m.IsLead, &m.CreatedAt, &m.UpdatedAt)
	if err != nil {
		return store.GroupMember{}, err
	}
	m.MemberID = m.AgentID
	m.CreatedAt, m.UpdatedAt = utc(m.CreatedAt), utc(m.UpdatedAt)
	return m, nil
}

func getMember(ctx context.Context, db dbtx, scope store.Scope, groupID, agentID string) (store.GroupMember, error) {
	return scanMember(db.QueryRow(ctx, memberSelect+` AND gm.group_id = $4 AND gm.agent_id = $5`,
		scope.OrgID, scope.UserID, scope.ProjectID, groupID, agentID))
}

func queryMembers(ctx context.Context, db dbtx, query string, args ...any) ([]store.GroupMember, error) {
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	members, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.GroupMember, error) { return scanMember(row) })
	if members == nil && err == nil {
		members = []store.GroupMember{}
	}
	return members, err
}

// checkMemberRole checks, under the team lock, that the group and the role
// exist and that giving agentID the role leaves the group one lead at most.
func checkMemberRole(ctx context.Context, tx pgx.Tx, scope store.Scope, groupID, agentID, roleID string) error {
	var groupExists bool
	var isLead *bool
	var otherLead bool
	err := tx.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM agent_groups
				WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND group_id = $4),
			(SELECT is_lead FROM roles WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND role_id = $6),
			EXISTS (SELECT 1 FROM group_members gm
				JOIN roles r ON r.org_id = gm.org_id AND r.user_id = gm.user_id AND r.project_id = gm.project_id
					AND r.role_id = gm.role_id AND r.is_lead
				WHERE gm.org_id = $1 AND gm.user_id = $2 AND gm.project_id = $3 AND gm.group_id = $4
				  AND gm.agent_id <> $5)`,
		scope.OrgID, scope.UserID, scope.ProjectID, groupID, agentID, roleID).Scan(&groupExists, &isLead, &otherLead)
	if err != nil {
		return err
	}
	switch {
	case !groupExists:
		return fmt.Errorf("group %s: %w", groupID, store.ErrNotFound)
	case isLead == nil:
		return fmt.Errorf("role %s: %w", roleID, store.ErrNotFound)
	case *isLead && otherLead:
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

// addMember adds m in tx, which holds the team lock.
func addMember(ctx context.Context, tx pgx.Tx, m store.GroupMember, now time.Time) (store.GroupMember, error) {
	sc := m.Scope
	var member bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM group_members
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND group_id = $4 AND agent_id = $5)`,
		sc.OrgID, sc.UserID, sc.ProjectID, m.GroupID, m.AgentID).Scan(&member); err != nil {
		return store.GroupMember{}, err
	}
	if member {
		return store.GroupMember{}, fmt.Errorf("agent %s is a member of group %s: %w", m.AgentID, m.GroupID, store.ErrConflict)
	}
	if err := checkMemberRole(ctx, tx, sc, m.GroupID, m.AgentID, m.RoleID); err != nil {
		return store.GroupMember{}, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO group_members (org_id, user_id, project_id, group_id, agent_id, role_id,
			created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`,
		sc.OrgID, sc.UserID, sc.ProjectID, m.GroupID, m.AgentID, m.RoleID, now); err != nil {
		return store.GroupMember{}, err
	}
	return getMember(ctx, tx, sc, m.GroupID, m.AgentID)
}

// AddMember adds an agent to a group with a role.
func (s *Store) AddMember(ctx context.Context, m store.GroupMember) (store.GroupMember, error) {
	if err := checkNewMember(&m); err != nil {
		return store.GroupMember{}, fmt.Errorf("postgres: add member: %w", err)
	}
	var out store.GroupMember
	err := s.teamTx(ctx, m.Scope, func(tx pgx.Tx) error {
		var err error
		out, err = addMember(ctx, tx, m, s.now())
		return err
	})
	if err != nil {
		return store.GroupMember{}, s.fail(ctx, "add member", err)
	}
	return out, nil
}

// CreateGroupWithMembers stores the group and its members in one
// transaction under the team lock; nothing is stored on any error.
func (s *Store) CreateGroupWithMembers(ctx context.Context, g store.Group, members []store.GroupMember) (store.Group, []store.GroupMember, error) {
	if err := store.CheckScope(g.Scope); err != nil {
		return store.Group{}, nil, fmt.Errorf("postgres: create group: %w", err)
	}
	if g.ID == "" {
		return store.Group{}, nil, errors.New("postgres: create group: group id is empty")
	}
	members = append([]store.GroupMember(nil), members...) // the caller's stay as they are
	for i := range members {
		members[i].Scope, members[i].GroupID = g.Scope, g.ID
		if err := checkNewMember(&members[i]); err != nil {
			return store.Group{}, nil, fmt.Errorf("postgres: create group: %w", err)
		}
	}
	var out store.Group
	added := make([]store.GroupMember, 0, len(members))
	err := s.teamTx(ctx, g.Scope, func(tx pgx.Tx) error {
		ts := s.now()
		if _, err := tx.Exec(ctx, `INSERT INTO agent_groups (org_id, user_id, project_id, group_id, name, description,
				created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`,
			g.Scope.OrgID, g.Scope.UserID, g.Scope.ProjectID, g.ID, g.Name, g.Description, ts); err != nil {
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
		return store.Group{}, nil, s.fail(ctx, "create group", err)
	}
	return out, added, nil
}

// GetMember returns one member of a group.
func (s *Store) GetMember(ctx context.Context, scope store.Scope, groupID, agentID string) (store.GroupMember, error) {
	m, err := getMember(ctx, s.pool, scope, groupID, agentID)
	if err != nil {
		return store.GroupMember{}, s.fail(ctx, "get member", err)
	}
	return m, nil
}

// ListMembers returns a group's members, oldest first; ErrNotFound when the
// group does not exist.
func (s *Store) ListMembers(ctx context.Context, scope store.Scope, groupID string) ([]store.GroupMember, error) {
	var members []store.GroupMember
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead},
		func(tx pgx.Tx) error {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM agent_groups
				WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND group_id = $4)`,
				scope.OrgID, scope.UserID, scope.ProjectID, groupID).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return fmt.Errorf("group %s: %w", groupID, store.ErrNotFound)
			}
			var err error
			members, err = queryMembers(ctx, tx, memberSelect+` AND gm.group_id = $4 ORDER BY gm.created_at, gm.agent_id`,
				scope.OrgID, scope.UserID, scope.ProjectID, groupID)
			return err
		})
	if err != nil {
		return nil, s.fail(ctx, "list members", err)
	}
	return members, nil
}

// UpdateMember gives a member another role.
func (s *Store) UpdateMember(ctx context.Context, scope store.Scope, groupID, agentID, roleID string) (store.GroupMember, error) {
	var out store.GroupMember
	err := s.teamTx(ctx, scope, func(tx pgx.Tx) error {
		if _, err := getMember(ctx, tx, scope, groupID, agentID); err != nil {
			return err
		}
		if err := checkMemberRole(ctx, tx, scope, groupID, agentID, roleID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE group_members SET role_id = $6, updated_at = $7
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND group_id = $4 AND agent_id = $5`,
			scope.OrgID, scope.UserID, scope.ProjectID, groupID, agentID, roleID, s.now()); err != nil {
			return err
		}
		var err error
		out, err = getMember(ctx, tx, scope, groupID, agentID)
		return err
	})
	if err != nil {
		return store.GroupMember{}, s.fail(ctx, "update member", err)
	}
	return out, nil
}

// RemoveMember removes an agent from a group.
func (s *Store) RemoveMember(ctx context.Context, scope store.Scope, groupID, agentID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM group_members
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND group_id = $4 AND agent_id = $5`,
		scope.OrgID, scope.UserID, scope.ProjectID, groupID, agentID)
	if err != nil {
		return s.fail(ctx, "remove member", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: remove member: %w", store.ErrNotFound)
	}
	return nil
}

// AgentMemberships lists the agent's memberships in the scope's groups, oldest first.
func (s *Store) AgentMemberships(ctx context.Context, scope store.Scope, agentID string) ([]store.GroupMember, error) {
	members, err := queryMembers(ctx, s.pool, memberSelect+` AND gm.agent_id = $4 ORDER BY gm.created_at, gm.group_id`,
		scope.OrgID, scope.UserID, scope.ProjectID, agentID)
	if err != nil {
		return nil, s.fail(ctx, "agent memberships", err)
	}
	return members, nil
}

// RemoveAgentMemberships removes the agent from every group of the scope.
func (s *Store) RemoveAgentMemberships(ctx context.Context, scope store.Scope, agentID string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM group_members
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4`,
		scope.OrgID, scope.UserID, scope.ProjectID, agentID)
	return s.fail(ctx, "remove agent memberships", err)
}

// CountChildren counts the scope's agents whose parent is parentID.
func (s *Store) CountChildren(ctx context.Context, scope store.Scope, parentID string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM agents
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND parent_id = $4`,
		scope.OrgID, scope.UserID, scope.ProjectID, parentID).Scan(&n)
	if err != nil {
		return 0, s.fail(ctx, "count children", err)
	}
	return n, nil
}

// CreateGroupRun stores a running group run, its first checkpoint and its
// events in one statement; ErrConflict, with nothing stored, when the run id
// is taken.
func (s *Store) CreateGroupRun(ctx context.Context, r store.Run, cp store.Checkpoint, events []store.Event) (store.Run, []store.Event, error) {
	if err := store.CheckScope(r.Scope); err != nil {
		return store.Run{}, nil, fmt.Errorf("postgres: create group run: %w", err)
	}
	if r.ID == "" || r.GroupID == "" {
		return store.Run{}, nil, errors.New("postgres: create group run: a group run needs a run id and a group id")
	}
	if r.AgentID != "" {
		return store.Run{}, nil, errors.New("postgres: create group run: a group run has no agent id")
	}
	var state *string
	if len(cp.State) > 0 {
		if !json.Valid(cp.State) {
			return store.Run{}, nil, errors.New("postgres: create group run: checkpoint state is not valid JSON")
		}
		state = payloadArg(cp.State)
	}
	out, err := store.RunEvents(r.Scope, r.ID, events, s.now())
	if err != nil {
		return store.Run{}, nil, fmt.Errorf("postgres: create group run: %w", err)
	}
	store.FillFromRun(out, "", r.GroupID)
	ts := s.now()
	args := append([]any{r.Scope.OrgID, r.Scope.UserID, r.Scope.ProjectID, r.ID, r.SessionKey, r.GroupID,
		r.ParentRunID, r.RoleID, r.Input, cp.Step, state, ts}, newEventArrays(out).args()...)
	var ids []int64
	var last *int64
	err = s.queryRowWithEvents(ctx, false, eventLockKeys(out), `WITH r AS (
			INSERT INTO runs (org_id, user_id, project_id, run_id, agent_id, session_key, group_id, parent_run_id,
				role_id, input, status, steps, created_at, started_at)
			VALUES ($1, $2, $3, $4, '', $5, $6, $7, $8, $9, 'running', $10, $12, $12)
			RETURNING run_id, agent_id, group_id),
		cp AS (
			INSERT INTO checkpoints (org_id, user_id, project_id, run_id, step, state, updated_at)
			SELECT $1, $2, $3, r.run_id, $10, $11::json, $12 FROM r),
		ins AS (`+insertRunEvents(13)+`)
		SELECT ARRAY(SELECT id FROM ins ORDER BY id), `+lastRunEvent, args...).Scan(&ids, &last)
	if err == nil {
		err = assignIDs(out, ids)
	}
	if err == nil {
		runPrev(out, r.ID, last)
	}
	if err != nil {
		return store.Run{}, nil, s.fail(ctx, "create group run", err)
	}
	run := store.Run{
		Scope: r.Scope, ID: r.ID, SessionKey: r.SessionKey, GroupID: r.GroupID, ParentRunID: r.ParentRunID,
		RoleID: r.RoleID, Input: r.Input, Status: store.RunRunning, Steps: cp.Step, CreatedAt: ts, StartedAt: &ts,
	}
	return run, out, nil
}

// ActiveGroupRuns lists the running group runs of every scope.
func (s *Store) ActiveGroupRuns(ctx context.Context) ([]store.Run, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+runCols+` FROM runs WHERE status = 'running' AND agent_id = ''
		ORDER BY org_id, user_id, project_id, created_at, run_id`)
	if err != nil {
		return nil, s.fail(ctx, "active group runs", err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Run, error) { return scanRun(row) })
	if err != nil {
		return nil, s.fail(ctx, "active group runs", err)
	}
	if runs == nil {
		runs = []store.Run{}
	}
	return runs, nil
}

// GetCheckpoint returns the run's checkpoint; ErrNotFound when it has none.
func (s *Store) GetCheckpoint(ctx context.Context, scope store.Scope, runID string) (store.Checkpoint, error) {
	cp, err := scanCheckpoint(s.pool.QueryRow(ctx, `SELECT run_id, step, state, updated_at FROM checkpoints
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND run_id = $4`,
		scope.OrgID, scope.UserID, scope.ProjectID, runID))
	if err != nil {
		return store.Checkpoint{}, s.fail(ctx, "get checkpoint", err)
	}
	return cp, nil
}

// RunStats summarises the scope's runs the filter selects.
func (s *Store) RunStats(ctx context.Context, scope store.Scope, filter store.RunFilter) (store.RunStats, error) {
	cond, args, err := runFilterCond(scope, filter)
	if err != nil {
		return store.RunStats{}, fmt.Errorf("postgres: run stats: %w", err)
	}
	var st store.RunStats
	var latency *float64
	err = s.pool.QueryRow(ctx, `SELECT count(*),
			count(*) FILTER (WHERE status = 'completed'),
			count(*) FILTER (WHERE status = 'failed'),
			count(*) FILTER (WHERE status = 'cancelled'),
			count(*) FILTER (WHERE status IN ('pending', 'running', 'waiting_approval')),
			COALESCE(sum((usage->>'total_tokens')::bigint), 0)::bigint,
			(avg(EXTRACT(EPOCH FROM ended_at - COALESCE(started_at, created_at)) * 1000)
				FILTER (WHERE status IN ('completed', 'failed', 'cancelled') AND ended_at IS NOT NULL))::float8
		FROM runs WHERE `+cond, args...).Scan(&st.Runs, &st.Completed, &st.Failed, &st.Cancelled, &st.Active,
		&st.Tokens, &latency)
	if err != nil {
		return store.RunStats{}, s.fail(ctx, "run stats", err)
	}
	if finished := st.Completed + st.Failed + st.Cancelled; finished > 0 {
		st.SuccessRate = float64(st.Completed) / float64(finished)
	}
	if latency != nil {
		st.MeanLatencyMS = *latency
	}
	return st, nil
}

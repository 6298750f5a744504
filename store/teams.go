package store

import (
	"context"
	"errors"
	"time"
)

// Team errors.
var (
	// ErrLeadExists: the group already has a member with a lead role.
	ErrLeadExists = errors.New("the group already has a lead")
	// ErrInUse: the role or agent is a member of a group; delete with cascade to remove the memberships too.
	ErrInUse = errors.New("in use by a group")
)

// Role is a job in a team: the prompt, model and tools an agent works with
// when it acts as a member of a group.
type Role struct {
	Scope        Scope  `json:"-"`
	ID           string `json:"role_id"`
	Name         string `json:"name"`
	Description  string `json:"description"`
	SystemPrompt string `json:"system_prompt"`
	Model        string `json:"model"`
	// AllowedTools is the role's tool permission: nil inherits the agent's
	// tools, an empty list permits none, a list permits exactly those.
	AllowedTools []string  `json:"allowed_tools"`
	Skills       []string  `json:"skills"` // granted to members on top of their own
	IsLead       bool      `json:"is_lead"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// RolePatch changes the non-nil fields of a role. ClearTools sets AllowedTools
// back to nil (inherit); AllowedTools non-nil sets the list (empty: no tools).
type RolePatch struct {
	Name         *string
	Description  *string
	SystemPrompt *string
	Model        *string
	AllowedTools *[]string
	ClearTools   bool
	Skills       *[]string
	IsLead       *bool
}

// Group is a team of agents, each member with a role; one role is the lead.
type Group struct {
	Scope       Scope     `json:"-"`
	ID          string    `json:"group_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Members     int       `json:"members"` // filled by GetGroup and ListGroups
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// GroupPatch changes the non-nil fields of a group.
type GroupPatch struct {
	Name        *string
	Description *string
}

// GroupMember is an agent in a group with a role. An agent is in a group at
// most once, so MemberID is the agent's id.
type GroupMember struct {
	Scope     Scope     `json:"-"`
	GroupID   string    `json:"group_id"`
	MemberID  string    `json:"member_id"` // = AgentID
	AgentID   string    `json:"agent_id"`
	RoleID    string    `json:"role_id"`
	RoleName  string    `json:"role_name"` // filled from the role on reads
	IsLead    bool      `json:"is_lead"`   // filled from the role on reads
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// RunStats summarises runs.
type RunStats struct {
	Runs          int     `json:"runs"`
	Completed     int     `json:"completed"`
	Failed        int     `json:"failed"`
	Cancelled     int     `json:"cancelled"`
	Active        int     `json:"active"`       // pending, running or waiting
	SuccessRate   float64 `json:"success_rate"` // completed / finished; 0 when none finished
	Tokens        int64   `json:"tokens"`       // total tokens of all runs
	MeanLatencyMS float64 `json:"mean_latency_ms"`
}

// TeamStore keeps roles, groups, their members and group runs.
//
// A group run is a row of the runs table with an empty agent_id and the
// group's id: it has a run id, status, events, a checkpoint (the
// orchestrator's state) and a stream like any run, but no agent claims it.
// Its members' runs name it as their ParentRunID.
type TeamStore interface {
	CreateRole(ctx context.Context, r Role) (Role, error) // ErrConflict when the id exists
	GetRole(ctx context.Context, scope Scope, roleID string) (Role, error)
	ListRoles(ctx context.Context, scope Scope, page Page) ([]Role, int, error) // oldest first
	// UpdateRole: ErrLeadExists when it would make a group have two leads.
	UpdateRole(ctx context.Context, scope Scope, roleID string, patch RolePatch) (Role, error)
	// DeleteRole: ErrInUse when a member has the role, unless cascade, which
	// removes those memberships in the same transaction.
	DeleteRole(ctx context.Context, scope Scope, roleID string, cascade bool) error

	CreateGroup(ctx context.Context, g Group) (Group, error) // ErrConflict when the id exists
	// CreateGroupWithMembers stores the group and its members in one
	// transaction, all or nothing: ErrConflict when the group id exists or an
	// agent is listed twice, and otherwise the errors of AddMember.
	CreateGroupWithMembers(ctx context.Context, g Group, members []GroupMember) (Group, []GroupMember, error)
	GetGroup(ctx context.Context, scope Scope, groupID string) (Group, error)
	ListGroups(ctx context.Context, scope Scope, page Page) ([]Group, int, error) // oldest first
	UpdateGroup(ctx context.Context, scope Scope, groupID string, patch GroupPatch) (Group, error)
	// DeleteGroup removes the group and its memberships (not the agents or roles).
	DeleteGroup(ctx context.Context, scope Scope, groupID string) error

	// AddMember: ErrNotFound when the group or role is missing, ErrConflict
	// when the agent is already a member, ErrLeadExists when the role is a
	// lead role and the group has a lead. The agent's existence is the caller's check.
	AddMember(ctx context.Context, m GroupMember) (GroupMember, error)
	GetMember(ctx context.Context, scope Scope, groupID, agentID string) (GroupMember, error)
	ListMembers(ctx context.Context, scope Scope, groupID string) ([]GroupMember, error) // oldest first
	// UpdateMember changes the member's role; same errors as AddMember.
	UpdateMember(ctx context.Context, scope Scope, groupID, agentID, roleID string) (GroupMember, error)
	RemoveMember(ctx context.Context, scope Scope, groupID, agentID string) error
	// AgentMemberships lists the agent's memberships in every group of the scope.
	AgentMemberships(ctx context.Context, scope Scope, agentID string) ([]GroupMember, error)
	// RemoveAgentMemberships removes the agent from every group.
	RemoveAgentMemberships(ctx context.Context, scope Scope, agentID string) error
	// CountChildren counts the agents whose ParentID is parentID.
	CountChildren(ctx context.Context, scope Scope, parentID string) (int, error)

	// CreateGroupRun stores a running group run (AgentID "", GroupID set) with
	// its first checkpoint and events, in one transaction.
	CreateGroupRun(ctx context.Context, r Run, cp Checkpoint, events []Event) (Run, []Event, error)
	// ActiveGroupRuns lists every group run still running, in every scope: the
	// one unscoped team read, for recovery at start-up.
	ActiveGroupRuns(ctx context.Context) ([]Run, error)
	// GetCheckpoint returns the run's checkpoint; ErrNotFound when it has none.
	GetCheckpoint(ctx context.Context, scope Scope, runID string) (Checkpoint, error)
	// RunStats summarises the runs the filter selects (Kind, GroupID, RoleID, AgentID).
	RunStats(ctx context.Context, scope Scope, filter RunFilter) (RunStats, error)
}

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// Blackboard is the groups' shared memory (memory.Blackboard implements it).
type Blackboard interface {
	Post(ctx context.Context, scope store.Scope, groupID string, p memory.Post) (memory.Entry, bool, error)
	List(ctx context.Context, scope store.Scope, groupID string, q memory.BoardQuery) ([]memory.Entry, int, error)
	Get(ctx context.Context, scope store.Scope, groupID, id string) (memory.Entry, error)
	Search(ctx context.Context, scope store.Scope, groupID, query, kind string, topK int) ([]memory.BoardHit, error)
}

func (s *Server) teamRoutes(api *gin.RouterGroup) {
	api.POST("/roles", s.createRole)
	api.GET("/roles", s.listRoles)
	api.POST("/roles/batch-delete", s.batchDeleteRoles)
	api.GET("/roles/:role_id", s.getRole)
	api.PUT("/roles/:role_id", s.updateRole)
	api.DELETE("/roles/:role_id", s.deleteRole)
	api.GET("/roles/:role_id/stats", s.roleStats)

	api.POST("/groups", s.createGroup)
	api.GET("/groups", s.listGroups)
	api.POST("/groups/batch-delete", s.batchDeleteGroups)
	api.GET("/groups/:group_id", s.getGroup)
	api.PUT("/groups/:group_id", s.updateGroup)
	api.DELETE("/groups/:group_id", s.deleteGroup)
	api.GET("/groups/:group_id/stats", s.groupStats)
	api.GET("/groups/:group_id/runs", s.listGroupRuns)
	api.POST("/groups/:group_id/runs", s.startGroupRun)
	api.POST("/groups/:group_id/members", s.addMember)
	api.GET("/groups/:group_id/members", s.listMembers)
	api.PUT("/groups/:group_id/members/:member_id", s.updateMember)
	api.DELETE("/groups/:group_id/members/:member_id", s.removeMember)
	api.POST("/groups/:group_id/messages", s.postGroupMessage)
	api.GET("/groups/:group_id/stream", s.streamGroup)
	api.GET("/groups/:group_id/blackboard", s.listBlackboard)
	api.POST("/groups/:group_id/blackboard", s.postBlackboard)
	api.GET("/groups/:group_id/blackboard/:memory_id", s.getBlackboard)
}

// failTeam maps the team errors, then the rest like fail.
func (s *Server) failTeam(c *gin.Context, err error, what string) {
	switch {
	case errors.Is(err, store.ErrLeadExists):
		writeError(c, http.StatusConflict, "lead_exists", "the group already has a lead; a group has exactly one member with a lead role")
	case errors.Is(err, store.ErrInUse):
		writeError(c, http.StatusConflict, "in_use", what+" is a member of a group; remove it from its groups first, or delete with ?cascade=true")
	case errors.Is(err, actors.ErrNoLead):
		writeError(c, http.StatusUnprocessableEntity, "no_lead", err.Error())
	case errors.Is(err, actors.ErrNoMembers):
		writeError(c, http.StatusUnprocessableEntity, "no_members", err.Error())
	case errors.Is(err, actors.ErrBadMode):
		writeError(c, http.StatusBadRequest, "invalid_mode", err.Error())
	case errors.Is(err, memory.ErrInvalid):
		writeError(c, http.StatusBadRequest, "invalid_request", err.Error())
	default:
		s.fail(c, err, what)
	}
}

// ---- roles ----

type roleBody struct {
	OrgID        string          `json:"org_id"`
	UserID       string          `json:"user_id"`
	ProjectID    string          `json:"project_id"`
	RoleID       string          `json:"role_id"`
	Name         *string         `json:"name"`
	Description  *string         `json:"description"`
	SystemPrompt *string         `json:"system_prompt"`
	Model        *string         `json:"model"`
	AllowedTools json.RawMessage `json:"allowed_tools"` // absent: unchanged; null: inherit; list: exactly these
	IsLead       *bool           `json:"is_lead"`
}

// tools decodes allowed_tools: set reports whether the field was given,
// clear whether it was null.
func (b *roleBody) tools() (list []string, set, clear bool, msg string) {
	raw := strings.TrimSpace(string(b.AllowedTools))
	if raw == "" {
		return nil, false, false, ""
	}
	if raw == "null" {
		return nil, true, true, ""
	}
	if err := json.Unmarshal(b.AllowedTools, &list); err != nil {
		return nil, false, false, "allowed_tools must be a list of tool names or null"
	}
	if list == nil {
		list = []string{}
	}
	if len(list) > maxTools {
		return nil, false, false, "at most 128 tools"
	}
	for _, t := range list {
		if t == "" || len(t) > 64 {
			return nil, false, false, "tool names must be 1-64 characters"
		}
	}
	return list, true, false, ""
}

func (b *roleBody) validate(creating bool) (string, bool) {
	if creating && (b.Name == nil || strings.TrimSpace(*b.Name) == "") {
		return "name is required", false
	}
	if b.Name != nil && (strings.TrimSpace(*b.Name) == "" || len(*b.Name) > maxNameLen) {
		return "name must be 1-200 characters", false
	}
	if b.Description != nil && len(*b.Description) > maxPromptLen {
		return "description must be at most 64 KiB", false
	}
	if b.SystemPrompt != nil && len(*b.SystemPrompt) > maxPromptLen {
		return "system_prompt must be at most 64 KiB", false
	}
	if b.Model != nil && len(*b.Model) > maxNameLen {
		return "model must be at most 200 characters", false
	}
	if _, _, _, msg := b.tools(); msg != "" {
		return msg, false
	}
	return "", true
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *Server) createRole(c *gin.Context) {
	var body roleBody
	if !bindJSON(c, &body) {
		return
	}
	if msg, ok := body.validate(true); !ok {
		writeError(c, http.StatusBadRequest, "invalid_role", msg)
		return
	}
	id := body.RoleID
	if id == "" {
		id = slugify(*body.Name)
	}
	if !agentIDPattern.MatchString(id) {
		writeError(c, http.StatusBadRequest, "invalid_role_id", "role_id must match [a-z0-9][a-z0-9_-]{0,63}")
		return
	}
	list, set, _, _ := body.tools()
	r := store.Role{
		Scope: scopeOf(c), ID: id, Name: *body.Name, Description: deref(body.Description),
		SystemPrompt: deref(body.SystemPrompt), Model: deref(body.Model), IsLead: body.IsLead != nil && *body.IsLead,
	}
	if set {
		r.AllowedTools = list
	}
	created, err := s.deps.Store.CreateRole(c.Request.Context(), r)
	if err != nil {
		s.failTeam(c, err, "role "+strconv.Quote(id))
		return
	}
	c.JSON(http.StatusCreated, created)
}

func (s *Server) listRoles(c *gin.Context) {
	page, ok := pageOf(c)
	if !ok {
		return
	}
	roles, total, err := s.deps.Store.ListRoles(c.Request.Context(), scopeOf(c), page.Page)
	if err != nil {
		s.fail(c, err, "roles")
		return
	}
	c.JSON(http.StatusOK, gin.H{"roles": nonNil(roles), "total": total, "page": page.number, "limit": page.Limit})
}

// byPathID loads what the path parameter names; a malformed id is simply not
// found. It writes the error response and returns false when there is none.
func byPathID[T any](s *Server, c *gin.Context, param, what string, get func(context.Context, store.Scope, string) (T, error)) (T, bool) {
	id := c.Param(param)
	var zero T
	if !agentIDPattern.MatchString(id) {
		writeError(c, http.StatusNotFound, "not_found", what+" "+strconv.Quote(id)+" not found")
		return zero, false
	}
	v, err := get(c.Request.Context(), scopeOf(c), id)
	if err != nil {
		s.fail(c, err, what+" "+strconv.Quote(id))
		return zero, false
	}
	return v, true
}

func (s *Server) roleOf(c *gin.Context) (store.Role, bool) {
	return byPathID(s, c, "role_id", "role", s.deps.Store.GetRole)
}

func (s *Server) getRole(c *gin.Context) {
	if r, ok := s.roleOf(c); ok {
		c.JSON(http.StatusOK, r)
	}
}

func (s *Server) updateRole(c *gin.Context) {
	r, ok := s.roleOf(c)
	if !ok {
		return
	}
	var body roleBody
	if !bindJSON(c, &body) {
		return
	}
	if body.RoleID != "" && body.RoleID != r.ID {
		writeError(c, http.StatusBadRequest, "invalid_role", "role_id cannot be changed")
		return
	}
	if msg, ok := body.validate(false); !ok {
		writeError(c, http.StatusBadRequest, "invalid_role", msg)
		return
	}
	patch := store.RolePatch{Name: body.Name, Description: body.Description, SystemPrompt: body.SystemPrompt, Model: body.Model, IsLead: body.IsLead}
	if list, set, clear, _ := body.tools(); set {
		if clear {
			patch.ClearTools = true
		} else {
			patch.AllowedTools = &list
		}
	}
	updated, err := s.deps.Store.UpdateRole(c.Request.Context(), r.Scope, r.ID, patch)
	if err != nil {
		s.failTeam(c, err, "role "+strconv.Quote(r.ID))
		return
	}
	c.JSON(http.StatusOK, updated)
}

func cascadeOf(c *gin.Context) (bool, bool) {
	switch c.Query("cascade") {
	case "", "false", "0":
		return false, true
	case "true", "1":
		return true, true
	}
	writeError(c, http.StatusBadRequest, "invalid_cascade", "cascade must be true or false")
	return false, false
}

func (s *Server) deleteRole(c *gin.Context) {
	r, ok := s.roleOf(c)
	if !ok {
		return
	}
	cascade, ok := cascadeOf(c)
	if !ok {
		return
	}
	if err := s.deps.Store.DeleteRole(c.Request.Context(), r.Scope, r.ID, cascade); err != nil {
		s.failTeam(c, err, "role "+strconv.Quote(r.ID))
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) roleStats(c *gin.Context) {
	r, ok := s.roleOf(c)
	if !ok {
		return
	}
	st, err := s.deps.Store.RunStats(c.Request.Context(), r.Scope, store.RunFilter{RoleID: r.ID, Kind: store.RunKindAgent})
	if err != nil {
		s.fail(c, err, "role stats")
		return
	}
	c.JSON(http.StatusOK, gin.H{"role_id": r.ID, "stats": st})
}

type batchDeleteBody struct {
	OrgID     string   `json:"org_id"`
	UserID    string   `json:"user_id"`
	ProjectID string   `json:"project_id"`
	RoleIDs   []string `json:"role_ids"`
	GroupIDs  []string `json:"group_ids"`
	Cascade   bool     `json:"cascade"`
}

type batchFailure struct {
	ID      string `json:"id"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// batchDelete deletes each id on its own and reports which failed and why.
func (s *Server) batchDelete(c *gin.Context, ids []string, field string, del func(context.Context, string) error) {
	if len(ids) == 0 || len(ids) > 200 {
		writeError(c, http.StatusBadRequest, "invalid_request", field+" must list 1-200 ids")
		return
	}
	deleted := []string{}
	failed := []batchFailure{}
	for _, id := range ids {
		err := store.ErrNotFound
		if agentIDPattern.MatchString(id) {
			err = del(c.Request.Context(), id)
		}
		switch {
		case err == nil:
			deleted = append(deleted, id)
		case errors.Is(err, store.ErrNotFound):
			failed = append(failed, batchFailure{id, "not_found", "not found"})
		case errors.Is(err, store.ErrInUse):
			failed = append(failed, batchFailure{id, "in_use", "a member of a group; use cascade"})
		default:
			s.fail(c, err, "batch delete")
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"deleted": deleted, "failed": failed})
}

func (s *Server) batchDeleteRoles(c *gin.Context) {
	var body batchDeleteBody
	if !bindJSON(c, &body) {
		return
	}
	sc := scopeOf(c)
	s.batchDelete(c, body.RoleIDs, "role_ids", func(ctx context.Context, id string) error {
		return s.deps.Store.DeleteRole(ctx, sc, id, body.Cascade)
	})
}

// ---- groups ----

type memberBody struct {
	AgentID string `json:"agent_id"`
	RoleID  string `json:"role_id"`
}

type groupBody struct {
	OrgID       string       `json:"org_id"`
	UserID      string       `json:"user_id"`
	ProjectID   string       `json:"project_id"`
	GroupID     string       `json:"group_id"`
	Name        *string      `json:"name"`
	Description *string      `json:"description"`
	Members     []memberBody `json:"members"`
}

func (b *groupBody) validate(creating bool) (string, bool) {
	if creating && (b.Name == nil || strings.TrimSpace(*b.Name) == "") {
		return "name is required", false
	}
	if b.Name != nil && (strings.TrimSpace(*b.Name) == "" || len(*b.Name) > maxNameLen) {
		return "name must be 1-200 characters", false
	}
	if b.Description != nil && len(*b.Description) > maxPromptLen {
		return "description must be at most 64 KiB", false
	}
	if !creating && b.Members != nil {
		return "members are changed through /members", false
	}
	if len(b.Members) > 100 {
		return "at most 100 members", false
	}
	return "", true
}

func (s *Server) createGroup(c *gin.Context) {
	var body groupBody
	if !bindJSON(c, &body) {
		return
	}
	if msg, ok := body.validate(true); !ok {
		writeError(c, http.StatusBadRequest, "invalid_group", msg)
		return
	}
	id := body.GroupID
	if id == "" {
		id = slugify(*body.Name)
	}
	if !agentIDPattern.MatchString(id) {
		writeError(c, http.StatusBadRequest, "invalid_group_id", "group_id must match [a-z0-9][a-z0-9_-]{0,63}")
		return
	}
	sc := scopeOf(c)
	ctx := c.Request.Context()
	// Check every member before creating anything, so a bad member list
	// leaves no half-made group behind.
	leads := 0
	seen := map[string]bool{}
	for _, m := range body.Members {
		if seen[m.AgentID] {
			writeError(c, http.StatusBadRequest, "invalid_group", "agent "+strconv.Quote(m.AgentID)+" is listed twice")
			return
		}
		seen[m.AgentID] = true
		if !s.memberExists(c, sc, m) {
			return
		}
		if r, err := s.deps.Store.GetRole(ctx, sc, m.RoleID); err == nil && r.IsLead {
			leads++
		}
	}
	if leads > 1 {
		writeError(c, http.StatusConflict, "lead_exists", "a group has exactly one member with a lead role; the list has "+strconv.Itoa(leads))
		return
	}
	g, err := s.deps.Store.CreateGroup(ctx, store.Group{Scope: sc, ID: id, Name: *body.Name, Description: deref(body.Description)})
	if err != nil {
		s.failTeam(c, err, "group "+strconv.Quote(id))
		return
	}
	members := []store.GroupMember{}
	for _, m := range body.Members {
		added, err := s.deps.Store.AddMember(ctx, store.GroupMember{Scope: sc, GroupID: id, AgentID: m.AgentID, MemberID: m.AgentID, RoleID: m.RoleID})
		if err != nil {
			s.failTeam(c, err, "member "+strconv.Quote(m.AgentID))
			return
		}
		members = append(members, added)
	}
	c.JSON(http.StatusCreated, groupView(g, members))
}

// memberExists checks that the agent and the role of a new member exist,
// creating the implicit main agent; it writes the error response when not.
func (s *Server) memberExists(c *gin.Context, sc store.Scope, m memberBody) bool {
	ctx := c.Request.Context()
	if !agentIDPattern.MatchString(m.AgentID) {
		writeError(c, http.StatusBadRequest, "invalid_member", "agent_id must be an agent's id")
		return false
	}
	if !agentIDPattern.MatchString(m.RoleID) {
		writeError(c, http.StatusBadRequest, "invalid_member", "role_id must be a role's id")
		return false
	}
	var err error
	if m.AgentID == store.MainAgentID {
		_, err = s.deps.Store.EnsureAgent(ctx, mainAgent(sc))
	} else {
		_, err = s.deps.Store.GetAgent(ctx, sc, m.AgentID)
	}
	if errors.Is(err, store.ErrNotFound) {
		writeError(c, http.StatusUnprocessableEntity, "unknown_agent", "agent "+strconv.Quote(m.AgentID)+" does not exist; create it first")
		return false
	}
	if err != nil {
		s.fail(c, err, "agent")
		return false
	}
	if _, err := s.deps.Store.GetRole(ctx, sc, m.RoleID); errors.Is(err, store.ErrNotFound) {
		writeError(c, http.StatusUnprocessableEntity, "unknown_role", "role "+strconv.Quote(m.RoleID)+" does not exist; create it first")
		return false
	} else if err != nil {
		s.fail(c, err, "role")
		return false
	}
	return true
}

func (s *Server) listGroups(c *gin.Context) {
	page, ok := pageOf(c)
	if !ok {
		return
	}
	groups, total, err := s.deps.Store.ListGroups(c.Request.Context(), scopeOf(c), page.Page)
	if err != nil {
		s.fail(c, err, "groups")
		return
	}
	c.JSON(http.StatusOK, gin.H{"groups": nonNil(groups), "total": total, "page": page.number, "limit": page.Limit})
}

func (s *Server) groupOf(c *gin.Context) (store.Group, bool) {
	return byPathID(s, c, "group_id", "group", s.deps.Store.GetGroup)
}

func (s *Server) getGroup(c *gin.Context) {
	g, ok := s.groupOf(c)
	if !ok {
		return
	}
	members, err := s.deps.Store.ListMembers(c.Request.Context(), g.Scope, g.ID)
	if err != nil {
		s.fail(c, err, "members")
		return
	}
	c.JSON(http.StatusOK, groupView(g, members))
}

// groupView is a group with its members and lead inline.
func groupView(g store.Group, members []store.GroupMember) gin.H {
	lead := ""
	for _, m := range members {
		if m.IsLead {
			lead = m.AgentID
		}
	}
	return gin.H{
		"group_id": g.ID, "name": g.Name, "description": g.Description, "created_at": g.CreatedAt, "updated_at": g.UpdatedAt,
		"members": nonNil(members), "member_count": len(members), "lead_agent_id": lead,
	}
}

func (s *Server) updateGroup(c *gin.Context) {
	g, ok := s.groupOf(c)
	if !ok {
		return
	}
	var body groupBody
	if !bindJSON(c, &body) {
		return
	}
	if body.GroupID != "" && body.GroupID != g.ID {
		writeError(c, http.StatusBadRequest, "invalid_group", "group_id cannot be changed")
		return
	}
	if msg, ok := body.validate(false); !ok {
		writeError(c, http.StatusBadRequest, "invalid_group", msg)
		return
	}
	updated, err := s.deps.Store.UpdateGroup(c.Request.Context(), g.Scope, g.ID, store.GroupPatch{Name: body.Name, Description: body.Description})
	if err != nil {
		s.failTeam(c, err, "group")
		return
	}
	c.JSON(http.StatusOK, updated)
}

func (s *Server) deleteGroup(c *gin.Context) {
	g, ok := s.groupOf(c)
	if !ok {
		return
	}
	if err := s.deps.Store.DeleteGroup(c.Request.Context(), g.Scope, g.ID); err != nil {
		s.failTeam(c, err, "group")
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) batchDeleteGroups(c *gin.Context) {
	var body batchDeleteBody
	if !bindJSON(c, &body) {
		return
	}
	sc := scopeOf(c)
	s.batchDelete(c, body.GroupIDs, "group_ids", func(ctx context.Context, id string) error {
		return s.deps.Store.DeleteGroup(ctx, sc, id)
	})
}

func (s *Server) groupStats(c *gin.Context) {
	g, ok := s.groupOf(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	runs, err := s.deps.Store.RunStats(ctx, g.Scope, store.RunFilter{GroupID: g.ID, Kind: store.RunKindGroup})
	if err != nil {
		s.fail(c, err, "group stats")
		return
	}
	memberRuns, err := s.deps.Store.RunStats(ctx, g.Scope, store.RunFilter{GroupID: g.ID, Kind: store.RunKindAgent})
	if err != nil {
		s.fail(c, err, "group stats")
		return
	}
	out := gin.H{"group_id": g.ID, "members": g.Members, "stats": runs, "member_runs": memberRuns}
	if bb := s.deps.Blackboard; bb != nil {
		if _, n, err := bb.List(ctx, g.Scope, g.ID, memory.BoardQuery{Page: store.Page{Limit: 1}}); err == nil {
			out["blackboard_entries"] = n
		}
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) listGroupRuns(c *gin.Context) {
	g, ok := s.groupOf(c)
	if !ok {
		return
	}
	page, ok := pageOf(c)
	if !ok {
		return
	}
	s.writeRuns(c, store.RunFilter{GroupID: g.ID, Kind: store.RunKindGroup, Status: c.Query("status")}, page)
}

type groupRunBody struct {
	OrgID      string `json:"org_id"`
	UserID     string `json:"user_id"`
	ProjectID  string `json:"project_id"`
	Input      string `json:"input"`
	SessionKey string `json:"session_key"`
	Mode       string `json:"mode"`
}

func (s *Server) startGroupRun(c *gin.Context) {
	g, ok := s.groupOf(c)
	if !ok {
		return
	}
	var body groupRunBody
	if !bindJSON(c, &body) {
		return
	}
	if msg, ok := validateInput(body.Input, "input", body.SessionKey); !ok {
		writeError(c, http.StatusBadRequest, "invalid_run", msg)
		return
	}
	run, err := s.deps.Runtime.StartGroupRun(c.Request.Context(), g.Scope, actors.GroupRunRequest{
		GroupID: g.ID, Input: body.Input, SessionKey: sessionOrDefault(body.SessionKey), Mode: body.Mode,
	})
	if err != nil {
		s.failTeam(c, err, "group run")
		return
	}
	mode := body.Mode
	if mode == "" {
		mode = actors.ModeSerial
	}
	c.JSON(http.StatusCreated, gin.H{"run_id": run.ID, "group_id": g.ID, "status": run.Status, "mode": mode, "session_key": run.SessionKey, "created_at": run.CreatedAt})
}

// ---- members ----

func (s *Server) addMember(c *gin.Context) {
	g, ok := s.groupOf(c)
	if !ok {
		return
	}
	var body struct {
		OrgID     string `json:"org_id"`
		UserID    string `json:"user_id"`
		ProjectID string `json:"project_id"`
		memberBody
	}
	if !bindJSON(c, &body) {
		return
	}
	if !s.memberExists(c, g.Scope, body.memberBody) {
		return
	}
	m, err := s.deps.Store.AddMember(c.Request.Context(), store.GroupMember{Scope: g.Scope, GroupID: g.ID, AgentID: body.AgentID, MemberID: body.AgentID, RoleID: body.RoleID})
	if errors.Is(err, store.ErrConflict) {
		writeError(c, http.StatusConflict, "already_member", "agent "+strconv.Quote(body.AgentID)+" is already a member of the group")
		return
	}
	if err != nil {
		s.failTeam(c, err, "member")
		return
	}
	c.JSON(http.StatusCreated, m)
}

func (s *Server) listMembers(c *gin.Context) {
	g, ok := s.groupOf(c)
	if !ok {
		return
	}
	members, err := s.deps.Store.ListMembers(c.Request.Context(), g.Scope, g.ID)
	if err != nil {
		s.fail(c, err, "members")
		return
	}
	c.JSON(http.StatusOK, gin.H{"members": nonNil(members), "total": len(members)})
}

func (s *Server) memberOf(c *gin.Context) (store.Group, string, bool) {
	g, ok := s.groupOf(c)
	if !ok {
		return g, "", false
	}
	id := c.Param("member_id")
	if !agentIDPattern.MatchString(id) {
		writeError(c, http.StatusNotFound, "not_found", "member "+strconv.Quote(id)+" not found")
		return g, "", false
	}
	return g, id, true
}

func (s *Server) updateMember(c *gin.Context) {
	g, id, ok := s.memberOf(c)
	if !ok {
		return
	}
	var body struct {
		OrgID     string `json:"org_id"`
		UserID    string `json:"user_id"`
		ProjectID string `json:"project_id"`
		RoleID    string `json:"role_id"`
	}
	if !bindJSON(c, &body) {
		return
	}
	if !agentIDPattern.MatchString(body.RoleID) {
		writeError(c, http.StatusBadRequest, "invalid_member", "role_id is required")
		return
	}
	if _, err := s.deps.Store.GetRole(c.Request.Context(), g.Scope, body.RoleID); errors.Is(err, store.ErrNotFound) {
		writeError(c, http.StatusUnprocessableEntity, "unknown_role", "role "+strconv.Quote(body.RoleID)+" does not exist; create it first")
		return
	}
	m, err := s.deps.Store.UpdateMember(c.Request.Context(), g.Scope, g.ID, id, body.RoleID)
	if err != nil {
		s.failTeam(c, err, "member "+strconv.Quote(id))
		return
	}
	c.JSON(http.StatusOK, m)
}

func (s *Server) removeMember(c *gin.Context) {
	g, id, ok := s.memberOf(c)
	if !ok {
		return
	}
	if err := s.deps.Store.RemoveMember(c.Request.Context(), g.Scope, g.ID, id); err != nil {
		s.failTeam(c, err, "member "+strconv.Quote(id))
		return
	}
	c.Status(http.StatusNoContent)
}

// ---- messages and stream ----

func (s *Server) postGroupMessage(c *gin.Context) {
	g, ok := s.groupOf(c)
	if !ok {
		return
	}
	var body struct {
		OrgID      string `json:"org_id"`
		UserID     string `json:"user_id"`
		ProjectID  string `json:"project_id"`
		Content    string `json:"content"`
		To         string `json:"to"`
		SessionKey string `json:"session_key"`
	}
	if !bindJSON(c, &body) {
		return
	}
	if msg, ok := validateInput(body.Content, "content", body.SessionKey); !ok {
		writeError(c, http.StatusBadRequest, "invalid_message", msg)
		return
	}
	ctx := c.Request.Context()
	members, err := s.deps.Store.ListMembers(ctx, g.Scope, g.ID)
	if err != nil {
		s.fail(c, err, "members")
		return
	}
	var to []string
	for _, m := range members {
		switch {
		case body.To == "" || body.To == "all":
			to = append(to, m.AgentID)
		case body.To == "lead" && m.IsLead, body.To == m.AgentID:
			to = append(to, m.AgentID)
		}
	}
	if len(to) == 0 {
		if body.To == "" || body.To == "all" {
			writeError(c, http.StatusUnprocessableEntity, "no_members", "the group has no members to send to")
		} else {
			writeError(c, http.StatusNotFound, "not_found", "no member "+strconv.Quote(body.To)+" in group "+g.ID)
		}
		return
	}
	session := "group:" + g.ID + ":" + sessionOrDefault(body.SessionKey)
	sent := make([]gin.H, 0, len(to))
	for _, id := range to {
		m, err := s.deps.Mailbox.Send(ctx, store.NewMessage{
			Scope: g.Scope, AgentID: id, SessionKey: session, GroupID: g.ID,
			SenderType: store.SenderUser, SenderID: g.Scope.UserID, Content: body.Content,
		})
		if err != nil {
			s.fail(c, err, "message")
			return
		}
		sent = append(sent, gin.H{"message_id": m.ID, "agent_id": id, "status": "queued"})
	}
	c.JSON(http.StatusAccepted, gin.H{"group_id": g.ID, "messages": sent})
}

func (s *Server) streamGroup(c *gin.Context) {
	g, ok := s.groupOf(c)
	if !ok {
		return
	}
	s.stream(c, g.Scope, store.EventFilter{GroupID: g.ID}, func(e store.Event) bool { return e.GroupID == g.ID }, "")
}

// ---- blackboard ----

func (s *Server) boardOf(c *gin.Context) (store.Group, Blackboard, bool) {
	bb := s.deps.Blackboard
	if bb == nil {
		writeError(c, http.StatusNotImplemented, "no_blackboard", "this daemon runs without memory, so groups have no blackboard")
		return store.Group{}, nil, false
	}
	g, ok := s.groupOf(c)
	return g, bb, ok
}

func (s *Server) listBlackboard(c *gin.Context) {
	g, bb, ok := s.boardOf(c)
	if !ok {
		return
	}
	kind := c.Query("kind")
	if kind != "" && !memory.ValidKind(kind) {
		writeError(c, http.StatusBadRequest, "invalid_kind", "kind must be fact, proposal, decision or todo")
		return
	}
	if q := strings.TrimSpace(c.Query("q")); q != "" {
		if len(q) > 4096 {
			writeError(c, http.StatusBadRequest, "invalid_query", "q must be at most 4 KiB")
			return
		}
		hits, err := bb.Search(c.Request.Context(), g.Scope, g.ID, q, kind, 50)
		if err != nil {
			s.failTeam(c, err, "blackboard")
			return
		}
		c.JSON(http.StatusOK, gin.H{"results": nonNil(hits), "query": q})
		return
	}
	page, ok := pageOf(c)
	if !ok {
		return
	}
	entries, total, err := bb.List(c.Request.Context(), g.Scope, g.ID, memory.BoardQuery{Kind: kind, Author: c.Query("author"), Page: page.Page})
	if err != nil {
		s.failTeam(c, err, "blackboard")
		return
	}
	c.JSON(http.StatusOK, gin.H{"entries": nonNil(entries), "total": total, "page": page.number, "limit": page.Limit})
}

func (s *Server) getBlackboard(c *gin.Context) {
	g, bb, ok := s.boardOf(c)
	if !ok {
		return
	}
	id := c.Param("memory_id")
	if len(id) > 128 {
		writeError(c, http.StatusNotFound, "not_found", "entry not found")
		return
	}
	e, err := bb.Get(c.Request.Context(), g.Scope, g.ID, id)
	if err != nil {
		s.fail(c, err, "entry "+strconv.Quote(id))
		return
	}
	c.JSON(http.StatusOK, e)
}

func (s *Server) postBlackboard(c *gin.Context) {
	g, bb, ok := s.boardOf(c)
	if !ok {
		return
	}
	var body struct {
		OrgID     string `json:"org_id"`
		UserID    string `json:"user_id"`
		ProjectID string `json:"project_id"`
		Kind      string `json:"kind"`
		Text      string `json:"text"`
		AgentID   string `json:"agent_id"` // post on behalf of a member
	}
	if !bindJSON(c, &body) {
		return
	}
	if body.Kind == "" {
		body.Kind = memory.KindFact
	}
	p := memory.Post{Kind: body.Kind, Text: body.Text, Author: "user:" + g.Scope.UserID}
	if body.AgentID != "" {
		if !agentIDPattern.MatchString(body.AgentID) {
			writeError(c, http.StatusBadRequest, "invalid_agent_id", "agent_id must be a member's id")
			return
		}
		if _, err := s.deps.Store.GetMember(c.Request.Context(), g.Scope, g.ID, body.AgentID); errors.Is(err, store.ErrNotFound) {
			writeError(c, http.StatusUnprocessableEntity, "not_member", "agent "+strconv.Quote(body.AgentID)+" is not a member of the group")
			return
		} else if err != nil {
			s.fail(c, err, "member")
			return
		}
		p.AgentID, p.Author = body.AgentID, body.AgentID
	}
	e, _, err := bb.Post(c.Request.Context(), g.Scope, g.ID, p)
	if err != nil {
		s.failTeam(c, err, "blackboard entry")
		return
	}
	c.JSON(http.StatusCreated, e)
}

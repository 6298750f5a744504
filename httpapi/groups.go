package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

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
	// One transaction: a member refused now (its role deleted meanwhile, a
	// failure) leaves no group behind.
	members := make([]store.GroupMember, len(body.Members))
	for i, m := range body.Members {
		members[i] = store.GroupMember{AgentID: m.AgentID, MemberID: m.AgentID, RoleID: m.RoleID}
	}
	g, members, err := s.deps.Store.CreateGroupWithMembers(ctx, store.Group{Scope: sc, ID: id, Name: *body.Name, Description: deref(body.Description)}, members)
	if err != nil {
		s.failTeam(c, err, "group "+strconv.Quote(id))
		return
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

func (s *Server) listGroups(c *gin.Context) { listPaged(s, c, "groups", s.deps.Store.ListGroups) }

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
	page, ok := pageOf(c)
	if !ok {
		return
	}
	// A group has at most a few hundred members, so the page is cut here
	// rather than in each store.
	members, err := s.deps.Store.ListMembers(c.Request.Context(), g.Scope, g.ID)
	if err != nil {
		s.fail(c, err, "members")
		return
	}
	total := len(members)
	members = members[min(page.Offset, total):min(page.Offset+page.Limit, total)]
	c.JSON(http.StatusOK, gin.H{"members": nonNil(members), "total": total, "page": page.number, "limit": page.Limit})
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
	s.stream(c, g.Scope, store.EventFilter{GroupID: g.ID}, func(e store.Event) bool { return e.GroupID == g.ID }, nil)
}

package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/store"
)

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
	// Skills are granted to the role's members on top of their own.
	Skills *[]string `json:"skills"`
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

func (s *Server) createRole(c *gin.Context) {
	var body roleBody
	if !bindJSON(c, &body) {
		return
	}
	if msg, ok := body.validate(true); !ok {
		writeError(c, http.StatusBadRequest, "invalid_role", msg)
		return
	}
	list, set, _, _ := body.tools()
	if set && !s.toolsExist(c, &list) {
		return
	}
	if !s.checkSkillGrants(c, body.Skills, "invalid_role") || !s.modelUsable(c, body.Model) {
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
	r := store.Role{
		Scope: scopeOf(c), ID: id, Name: *body.Name, Description: deref(body.Description),
		SystemPrompt: deref(body.SystemPrompt), Model: deref(body.Model), IsLead: body.IsLead != nil && *body.IsLead,
	}
	if set {
		r.AllowedTools = list
	}
	if body.Skills != nil {
		r.Skills = *body.Skills
	}
	created, err := s.deps.Store.CreateRole(c.Request.Context(), r)
	if err != nil {
		s.failTeam(c, err, "role "+strconv.Quote(id))
		return
	}
	c.JSON(http.StatusCreated, created)
}

func (s *Server) listRoles(c *gin.Context) { listPaged(s, c, "roles", s.deps.Store.ListRoles) }

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
	if !s.checkSkillGrants(c, body.Skills, "invalid_role") || !s.modelUsable(c, body.Model) {
		return
	}
	patch := store.RolePatch{Name: body.Name, Description: body.Description, SystemPrompt: body.SystemPrompt, Model: body.Model, IsLead: body.IsLead, Skills: body.Skills}
	if list, set, clear, _ := body.tools(); set {
		if !s.toolsExist(c, &list) {
			return
		}
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

package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

func (s *Server) teamRoutes(api *gin.RouterGroup) {
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/roles", Role: auth.RoleAdmin,
		Summary: "Create a role: the prompt, model and tools an agent works with in a group",
		Body:    roleBody{}, Response: store.Role{}, Status: http.StatusCreated}, s.createRole)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/roles", Role: auth.RoleViewer,
		Summary: "List the scope's roles", Response: listOf{"roles", store.Role{}}, Query: pageQuery()}, s.listRoles)
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/roles/batch-delete", Role: auth.RoleAdmin,
		Summary: "Delete several roles; reports which failed and why",
		Body:    batchDeleteBody{}, Response: batchDeleteAnswer{}}, s.batchDeleteRoles)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/roles/:role_id", Role: auth.RoleViewer,
		Summary: "Get a role", Response: store.Role{}}, s.getRole)
	s.register(api, routeSpec{Method: http.MethodPut, Path: "/roles/:role_id", Role: auth.RoleAdmin,
		Summary: "Change a role (the fields given)",
		Body:    roleBody{}, Response: store.Role{}, Errors: []int{http.StatusConflict}}, s.updateRole)
	s.register(api, routeSpec{Method: http.MethodDelete, Path: "/roles/:role_id", Role: auth.RoleAdmin,
		Summary: "Delete a role",
		Status:  http.StatusNoContent, Query: cascadeQuery(), Errors: []int{http.StatusConflict}}, s.deleteRole)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/roles/:role_id/stats", Role: auth.RoleViewer,
		Summary: "Run statistics of a role's member runs", Response: roleStatsAnswer{}}, s.roleStats)

	s.register(api, routeSpec{Method: http.MethodPost, Path: "/groups", Role: auth.RoleAdmin,
		Summary: "Create a group, optionally with its members (one with a lead role)",
		Body:    groupBody{}, Response: groupAnswer{}, Status: http.StatusCreated}, s.createGroup)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/groups", Role: auth.RoleViewer,
		Summary: "List the scope's groups", Response: listOf{"groups", store.Group{}}, Query: pageQuery()}, s.listGroups)
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/groups/batch-delete", Role: auth.RoleAdmin,
		Summary: "Delete several groups; reports which failed and why",
		Body:    batchDeleteBody{}, Response: batchDeleteAnswer{}}, s.batchDeleteGroups)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/groups/:group_id", Role: auth.RoleViewer,
		Summary: "Get a group with its members and lead", Response: groupAnswer{}}, s.getGroup)
	s.register(api, routeSpec{Method: http.MethodPut, Path: "/groups/:group_id", Role: auth.RoleAdmin,
		Summary: "Change a group's name or description", Body: groupBody{}, Response: store.Group{}}, s.updateGroup)
	s.register(api, routeSpec{Method: http.MethodDelete, Path: "/groups/:group_id", Role: auth.RoleAdmin,
		Summary: "Delete a group and its memberships", Status: http.StatusNoContent}, s.deleteGroup)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/groups/:group_id/stats", Role: auth.RoleViewer,
		Summary: "Run statistics of a group and its members", Response: groupStatsAnswer{}}, s.groupStats)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/groups/:group_id/runs", Role: auth.RoleViewer,
		Summary:  "List a group's group runs",
		Response: listOf{"runs", store.Run{}}, Query: pageQuery(runStatusQuery())}, s.listGroupRuns)
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/groups/:group_id/runs", Role: auth.RoleMember,
		Summary: "Start a group run: the members work on the input, serially or in parallel, and the lead answers",
		Body:    groupRunBody{}, Response: groupRunCreated{}, Status: http.StatusCreated}, s.startGroupRun)
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/groups/:group_id/members", Role: auth.RoleAdmin,
		Summary: "Add an agent to a group with a role",
		Body:    addMemberBody{}, Response: store.GroupMember{}, Status: http.StatusCreated}, s.addMember)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/groups/:group_id/members", Role: auth.RoleViewer,
		Summary: "List a group's members", Response: listOf{"members", store.GroupMember{}}, Query: pageQuery()}, s.listMembers)
	s.register(api, routeSpec{Method: http.MethodPut, Path: "/groups/:group_id/members/:member_id", Role: auth.RoleAdmin,
		Summary: "Change a member's role",
		Body:    updateMemberBody{}, Response: store.GroupMember{}, Errors: []int{http.StatusConflict, http.StatusUnprocessableEntity}}, s.updateMember)
	s.register(api, routeSpec{Method: http.MethodDelete, Path: "/groups/:group_id/members/:member_id", Role: auth.RoleAdmin,
		Summary: "Remove a member from a group", Status: http.StatusNoContent}, s.removeMember)
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/groups/:group_id/messages", Role: auth.RoleMember,
		Summary: "Send a message to one member (to) or all of a group",
		Body:    groupMessageBody{}, Response: groupMessagesQueued{}, Status: http.StatusAccepted}, s.postGroupMessage)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/groups/:group_id/stream", Role: auth.RoleViewer,
		Summary: "Stream a group's events (SSE)", Stream: true, Query: streamQuery()}, s.streamGroup)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/groups/:group_id/blackboard", Role: auth.RoleViewer,
		Summary:  "List a group's blackboard entries, or search them with q",
		Response: eitherOf{listOf{"entries", memory.Entry{}}, blackboardSearchAnswer{}}, Query: pageQuery(blackboardQuery()...), Errors: []int{http.StatusNotImplemented}}, s.listBlackboard)
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/groups/:group_id/blackboard", Role: auth.RoleMember,
		Summary: "Post an entry on a group's blackboard, as the caller or a member agent",
		Body:    blackboardPostBody{}, Response: memory.Entry{}, Status: http.StatusCreated, Errors: []int{http.StatusNotImplemented}}, s.postBlackboard)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/groups/:group_id/blackboard/:memory_id", Role: auth.RoleViewer,
		Summary: "Get a blackboard entry", Response: memory.Entry{}, Errors: []int{http.StatusNotImplemented}}, s.getBlackboard)
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

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
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

// listPaged answers a plain paged list of the scope's field ("roles"):
// {<field>: [...], total, page, limit}.
func listPaged[T any](s *Server, c *gin.Context, field string, list func(context.Context, store.Scope, store.Page) ([]T, int, error)) {
	page, ok := pageOf(c)
	if !ok {
		return
	}
	items, total, err := list(c.Request.Context(), scopeOf(c), page.Page)
	if err != nil {
		s.fail(c, err, field)
		return
	}
	c.JSON(http.StatusOK, gin.H{field: nonNil(items), "total": total, "page": page.number, "limit": page.Limit})
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

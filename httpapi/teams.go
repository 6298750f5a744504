package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

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

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

// ApprovalResolver decides approvals and resumes their runs (actors.Runtime).
type ApprovalResolver interface {
	ResolveApproval(ctx context.Context, scope store.Scope, id string, d store.ApprovalDecision) (store.Approval, error)
}

// RuleWriter writes "allow this tool for this agent" policy rules (the
// policy engine), for "approve always".
type RuleWriter interface {
	AllowAlways(ctx context.Context, scope store.Scope, tool, agentID, by string) error
}

// approvalEventTypes are the events an approvals stream carries.
var approvalEventTypes = []string{"tool.requires_approval", "approval.resolved"}

var approvalIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// approvalView is an approval as the API shows it: the arguments as JSON
// when they are JSON.
type approvalView struct {
	store.Approval
	Arguments json.RawMessage `json:"arguments"`
}

func viewApproval(a store.Approval) approvalView {
	v := approvalView{Approval: a}
	if json.Valid([]byte(a.Arguments)) {
		v.Arguments = json.RawMessage(a.Arguments)
	} else {
		v.Arguments, _ = json.Marshal(a.Arguments)
	}
	return v
}

type resolveBody struct {
	OrgID     string `json:"org_id"`
	UserID    string `json:"user_id"`
	ProjectID string `json:"project_id"`
	// Decision is approve or deny.
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	// Always also allows the tool for the agent from now on (a policy rule;
	// admins only).
	Always bool `json:"always"`
}

func (s *Server) approvalRoutes(api *gin.RouterGroup) {
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/approvals", Role: auth.RoleViewer,
		Summary:  "List tool calls waiting for (or given) a person's approval, newest first",
		Response: listOf{"approvals", approvalView{}}, Query: pageQuery(
			queryParam{Name: "status", Type: "string", Enum: []string{store.ApprovalPending, store.ApprovalApproved, store.ApprovalDenied, store.ApprovalExpired}},
			queryParam{Name: "agent_id", Type: "string"}, queryParam{Name: "run_id", Type: "string"})}, s.listApprovals)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/approvals/stream", Role: auth.RoleViewer,
		Summary: "Stream the scope's tool.requires_approval and approval.resolved events (SSE)", Stream: true, Query: streamQuery()},
		s.streamApprovals)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/approvals/:approval_id", Role: auth.RoleViewer,
		Summary: "Get an approval: the call, its arguments, the policy's reason, the decision", Response: approvalView{}}, s.getApproval)
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/approvals/:approval_id/resolve", Role: auth.RoleMember,
		Summary: "Approve or deny a pending call; the run resumes (always: also allow the tool for the agent, admins only)",
		Body:    resolveBody{}, Response: approvalView{}, Errors: []int{http.StatusConflict, http.StatusNotImplemented}}, s.resolveApproval)
}

// approvals is the store's approvals, or a 501 when it keeps none.
func (s *Server) approvals(c *gin.Context) (store.ApprovalStore, bool) {
	as, ok := s.deps.Store.(store.ApprovalStore)
	if !ok {
		writeError(c, http.StatusNotImplemented, "approvals_unavailable", "this daemon keeps no approvals")
	}
	return as, ok
}

func (s *Server) listApprovals(c *gin.Context) {
	as, ok := s.approvals(c)
	if !ok {
		return
	}
	page, ok := pageOf(c)
	if !ok {
		return
	}
	f := store.ApprovalFilter{Status: c.Query("status"), AgentID: c.Query("agent_id"), RunID: c.Query("run_id")}
	if f.Status != "" && !store.ValidApprovalStatus(f.Status) {
		writeError(c, http.StatusBadRequest, "invalid_status", "status must be pending, approved, denied or expired")
		return
	}
	list, total, err := as.ListApprovals(c.Request.Context(), scopeOf(c), f, page.Page)
	if err != nil {
		s.fail(c, err, "approvals")
		return
	}
	views := make([]approvalView, len(list))
	for i, a := range list {
		views[i] = viewApproval(a)
	}
	c.JSON(http.StatusOK, gin.H{"approvals": views, "total": total, "page": page.number, "limit": page.Limit})
}

func (s *Server) getApproval(c *gin.Context) {
	as, ok := s.approvals(c)
	if !ok {
		return
	}
	id := c.Param("approval_id")
	if !approvalIDPattern.MatchString(id) {
		writeError(c, http.StatusNotFound, "not_found", "approval not found")
		return
	}
	a, err := as.GetApproval(c.Request.Context(), scopeOf(c), id)
	if err != nil {
		s.fail(c, err, "approval")
		return
	}
	c.JSON(http.StatusOK, viewApproval(a))
}

func (s *Server) streamApprovals(c *gin.Context) {
	sc := scopeOf(c)
	s.stream(c, sc, store.EventFilter{Types: approvalEventTypes}, func(e store.Event) bool {
		return e.Type == approvalEventTypes[0] || e.Type == approvalEventTypes[1]
	}, nil)
}

func (s *Server) resolveApproval(c *gin.Context) {
	as, ok := s.approvals(c)
	if !ok {
		return
	}
	resolver, ok := s.deps.Runtime.(ApprovalResolver)
	if !ok {
		writeError(c, http.StatusNotImplemented, "approvals_unavailable", "this daemon resolves no approvals")
		return
	}
	// Another scope's approval is not found, whatever the body says.
	id := c.Param("approval_id")
	if !approvalIDPattern.MatchString(id) {
		writeError(c, http.StatusNotFound, "not_found", "approval not found")
		return
	}
	sc := scopeOf(c)
	ctx := c.Request.Context()
	current, err := as.GetApproval(ctx, sc, id)
	if err != nil {
		s.fail(c, err, "approval")
		return
	}
	var body resolveBody
	if !bindJSON(c, &body) {
		return
	}
	var status string
	switch body.Decision {
	case "approve":
		status = store.ApprovalApproved
	case "deny":
		status = store.ApprovalDenied
	default:
		writeError(c, http.StatusBadRequest, "invalid_decision", "decision must be approve or deny")
		return
	}
	if len(body.Reason) > 2000 {
		writeError(c, http.StatusBadRequest, "invalid_reason", "reason must be at most 2000 bytes")
		return
	}
	if body.Always && status != store.ApprovalApproved {
		writeError(c, http.StatusBadRequest, "invalid_decision", "always goes with approve only")
		return
	}
	p := principalOf(c)
	if body.Always && !p.Role.Allows(auth.RoleAdmin) {
		writeError(c, http.StatusForbidden, "forbidden", "approve always writes a policy rule: an admin's")
		return
	}
	if body.Always && s.deps.Rules == nil {
		writeError(c, http.StatusNotImplemented, "policy_unavailable", "this daemon has no policy rules to write; approve without always")
		return
	}
	by := "user:" + sc.UserID
	if body.Always {
		// The rule first: if it cannot be written the call is still
		// waiting, and the approver can retry or approve it once.
		if current.Status != store.ApprovalPending {
			writeError(c, http.StatusConflict, "approval_decided", "the approval is already "+current.Status)
			return
		}
		if err := s.deps.Rules.AllowAlways(ctx, sc, current.Tool, current.AgentID, by); err != nil {
			s.fail(c, err, "policy rule")
			return
		}
	}
	a, err := resolver.ResolveApproval(ctx, sc, id, store.ApprovalDecision{Status: status, By: by, Reason: body.Reason})
	switch {
	case errors.Is(err, actors.ErrNoApprovals):
		writeError(c, http.StatusNotImplemented, "approvals_unavailable", "this daemon keeps no approvals")
	case errors.Is(err, store.ErrApprovalExpired):
		writeError(c, http.StatusConflict, "approval_expired", "the approval expired before it was decided; the run was told \"denied: expired\"")
	case errors.Is(err, store.ErrNotFound):
		writeError(c, http.StatusNotFound, "not_found", "approval not found")
	case errors.Is(err, store.ErrConflict):
		writeError(c, http.StatusConflict, "approval_decided", "the approval is already "+a.Status)
	case err != nil:
		s.fail(c, err, "approval")
	default:
		c.JSON(http.StatusOK, viewApproval(a))
	}
}

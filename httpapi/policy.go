package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/policy"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// Policy is the tool policy (policy.Engine): the scope's rules, the
// operator's read-only ones, and a dry run.
type Policy interface {
	Get(ctx context.Context, scope store.Scope) (policy.ScopePolicy, error)
	Put(ctx context.Context, scope store.Scope, rules []policy.Rule, ifVersion int64, by string) (policy.ScopePolicy, error)
	ConfigRules() []policy.Rule
	Defaults() []string
	Check(ctx context.Context, call tools.Call) (policy.Decision, error)
}

// policyResponse is GET and PUT /api/policy's answer.
type policyResponse struct {
	// Rules are the scope's own rules, in the order they are tried.
	Rules     []policy.Rule `json:"rules"`
	Version   int64         `json:"version"`
	UpdatedBy string        `json:"updated_by,omitempty"`
	UpdatedAt time.Time     `json:"updated_at,omitzero"`
	// ConfigRules are the operator's, tried before the scope's (read-only).
	ConfigRules []policy.Rule `json:"config_rules"`
	// Defaults describe the built-in defaults in effect, tried after.
	Defaults []string `json:"defaults"`
}

type putPolicyBody struct {
	// Rules replace the scope's rules ([] removes them all).
	Rules []policy.Rule `json:"rules"`
	// Version is the one read (like If-Match): 409 if the rules changed
	// since. Omitted, and without If-Match, the rules are overwritten.
	Version   *int64 `json:"version"`
	OrgID     string `json:"org_id"`
	UserID    string `json:"user_id"`
	ProjectID string `json:"project_id"`
}

type checkPolicyBody struct {
	Tool    string          `json:"tool"`
	AgentID string          `json:"agent_id"` // default "main"
	Role    string          `json:"role"`
	Args    json.RawMessage `json:"args"`
	// The scope fields may be in the body, as on every route.
	OrgID     string `json:"org_id"`
	UserID    string `json:"user_id"`
	ProjectID string `json:"project_id"`
}

// MountPolicy adds the /api/policy routes.
func (s *Server) MountPolicy(p Policy) {
	api := s.apiGroup()
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/policy", Role: auth.RoleAdmin,
		Summary:  "The scope's tool policy rules and version (also the ETag), the operator's rules and the built-in defaults in effect",
		Response: policyResponse{}},
		func(c *gin.Context) { s.getPolicy(c, p) })
	s.register(api, routeSpec{Method: http.MethodPut, Path: "/policy", Role: auth.RoleAdmin,
		Summary: "Replace the scope's tool policy rules; give the version read (body or If-Match) to be refused with 409 if they changed since",
		Body:    putPolicyBody{}, Response: policyResponse{}, Errors: []int{http.StatusConflict}},
		func(c *gin.Context) { s.putPolicy(c, p) })
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/policy/check", Role: auth.RoleMember,
		Summary: "Dry run: what the tool policy decides for a call (allow, deny or ask) and which rule decided",
		Body:    checkPolicyBody{}, Response: policy.Decision{}},
		func(c *gin.Context) { s.checkPolicy(c, p) })
}

func (s *Server) getPolicy(c *gin.Context, p Policy) {
	sp, err := p.Get(c.Request.Context(), scopeOf(c))
	if err != nil {
		s.fail(c, err, "policy")
		return
	}
	s.writePolicy(c, p, sp)
}

func (s *Server) writePolicy(c *gin.Context, p Policy, sp policy.ScopePolicy) {
	c.Header("ETag", strconv.Quote(strconv.FormatInt(sp.Version, 10)))
	c.JSON(http.StatusOK, policyResponse{Rules: sp.Rules, Version: sp.Version, UpdatedBy: sp.UpdatedBy, UpdatedAt: sp.UpdatedAt,
		ConfigRules: p.ConfigRules(), Defaults: p.Defaults()})
}

func (s *Server) putPolicy(c *gin.Context, p Policy) {
	var body putPolicyBody
	if !bindJSON(c, &body) {
		return
	}
	if body.Rules == nil {
		writeError(c, http.StatusBadRequest, "invalid_rules", "rules is required (an empty list removes every rule)")
		return
	}
	version := store.AnyVersion
	if body.Version != nil {
		if *body.Version < 0 {
			writeError(c, http.StatusBadRequest, "invalid_version", "version must be 0 or more")
			return
		}
		version = *body.Version
	}
	if im := c.GetHeader("If-Match"); im != "" {
		v, err := strconv.ParseInt(strings.TrimPrefix(strings.Trim(im, `"`), "W/"), 10, 64)
		if err != nil || v < 0 {
			writeError(c, http.StatusBadRequest, "invalid_version", `If-Match must be the policy's ETag, like "3"`)
			return
		}
		if body.Version != nil && *body.Version != v {
			writeError(c, http.StatusBadRequest, "invalid_version", "If-Match and the body's version differ")
			return
		}
		version = v
	}
	sp, err := p.Put(c.Request.Context(), scopeOf(c), body.Rules, version, principalOf(c).Actor())
	var re *policy.RuleError
	switch {
	case errors.As(err, &re):
		writeError(c, http.StatusBadRequest, "invalid_rule", re.Error())
	case errors.Is(err, store.ErrConflict):
		writeError(c, http.StatusConflict, "version_conflict", "the policy changed since the version you read; read it again and reapply your change")
	case err != nil:
		s.fail(c, err, "policy")
	default:
		s.writePolicy(c, p, sp)
	}
}

func (s *Server) checkPolicy(c *gin.Context, p Policy) {
	var body checkPolicyBody
	if !bindJSON(c, &body) {
		return
	}
	if !tools.ValidToolName(body.Tool) {
		writeError(c, http.StatusBadRequest, "invalid_tool", "tool must be a tool name (1-64 of a-z A-Z 0-9 _ -)")
		return
	}
	if body.AgentID == "" {
		body.AgentID = store.MainAgentID
	}
	if len(body.Args) == 0 || string(body.Args) == "null" {
		body.Args = json.RawMessage(`{}`)
	}
	scope := scopeOf(c)
	call := tools.Call{Scope: scope, AgentID: body.AgentID, Role: body.Role, Name: body.Tool, Args: body.Args}
	// Rules may name the agent: the dry run knows its name when it exists.
	// An agent of another scope is not found, so nothing of it shows.
	if a, err := s.deps.Store.GetAgent(c.Request.Context(), scope, body.AgentID); err == nil {
		call.AgentName = a.Name
	} else if !errors.Is(err, store.ErrNotFound) {
		s.fail(c, err, "agent")
		return
	}
	d, err := p.Check(c.Request.Context(), call)
	if err != nil {
		s.fail(c, fmt.Errorf("policy check: %w", err), "policy")
		return
	}
	// The rules themselves are for admins to read.
	if !principalOf(c).Role.Allows(auth.RoleAdmin) {
		d.Matched = nil
	}
	c.JSON(http.StatusOK, d)
}

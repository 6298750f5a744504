package httpapi

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
)

var agentIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

const (
	maxNameLen    = 200
	maxPromptLen  = 64 << 10
	maxContentLen = 256 << 10
	maxTools      = 128
	maxSessionKey = 128
)

type agentBody struct {
	OrgID        string    `json:"org_id"`
	UserID       string    `json:"user_id"`
	ProjectID    string    `json:"project_id"`
	AgentID      string    `json:"agent_id"`
	Name         *string   `json:"name"`
	SystemPrompt *string   `json:"system_prompt"`
	Model        *string   `json:"model"`
	Tools        *[]string `json:"tools"`
	// Skills are the names of the skills granted (see /api/skills).
	Skills *[]string `json:"skills"`
}

func (b *agentBody) validate(creating bool) (string, bool) {
	if creating && (b.Name == nil || strings.TrimSpace(*b.Name) == "") {
		return "name is required", false
	}
	if b.Name != nil && (strings.TrimSpace(*b.Name) == "" || len(*b.Name) > maxNameLen) {
		return "name must be 1-200 characters", false
	}
	if b.SystemPrompt != nil && len(*b.SystemPrompt) > maxPromptLen {
		return "system_prompt must be at most 64 KiB", false
	}
	if b.Model != nil && len(*b.Model) > maxNameLen {
		return "model must be at most 200 characters", false
	}
	if b.Tools != nil {
		if len(*b.Tools) > maxTools {
			return "at most 128 tools", false
		}
		for _, t := range *b.Tools {
			if t == "" || len(t) > 64 {
				return "tool names must be 1-64 characters", false
			}
		}
	}
	return "", true
}

func (s *Server) createAgent(c *gin.Context) {
	var body agentBody
	if !bindJSON(c, &body) {
		return
	}
	if msg, ok := body.validate(true); !ok {
		writeError(c, http.StatusBadRequest, "invalid_agent", msg)
		return
	}
	if !s.toolsExist(c, body.Tools) || !s.checkSkillGrants(c, body.Skills, "invalid_agent") || !s.modelUsable(c, body.Model) {
		return
	}
	id := body.AgentID
	if id == "" {
		id = slugify(*body.Name)
	}
	if !agentIDPattern.MatchString(id) {
		writeError(c, http.StatusBadRequest, "invalid_agent_id", "agent_id must match [a-z0-9][a-z0-9_-]{0,63}")
		return
	}
	a := store.Agent{Scope: scopeOf(c), ID: id, Name: *body.Name, State: store.AgentIdle}
	if body.SystemPrompt != nil {
		a.SystemPrompt = *body.SystemPrompt
	}
	if body.Model != nil {
		a.Model = *body.Model
	}
	if body.Tools != nil {
		a.Tools = *body.Tools
	}
	if body.Skills != nil {
		a.Skills = *body.Skills
	}
	created, err := s.deps.Store.CreateAgent(c.Request.Context(), a)
	if err != nil {
		s.fail(c, err, "agent "+id)
		return
	}
	c.JSON(http.StatusCreated, created)
}

func (s *Server) listAgents(c *gin.Context) {
	page, ok := pageOf(c)
	if !ok {
		return
	}
	sc := scopeOf(c)
	if _, err := s.deps.Store.EnsureAgent(c.Request.Context(), mainAgent(sc)); err != nil {
		s.fail(c, err, "agent")
		return
	}
	agents, total, err := s.deps.Store.ListAgents(c.Request.Context(), sc, page.Page)
	if err != nil {
		s.fail(c, err, "agents")
		return
	}
	c.JSON(http.StatusOK, gin.H{"agents": nonNil(agents), "total": total, "page": page.number, "limit": page.Limit})
}

// agentOf loads the agent named in the path, creating the implicit main agent.
// It writes the error response and returns false when there is none.
func (s *Server) agentOf(c *gin.Context) (store.Agent, bool) {
	id := c.Param("agent_id")
	if !agentIDPattern.MatchString(id) {
		writeError(c, http.StatusNotFound, "not_found", "agent "+strconv.Quote(id)+" not found")
		return store.Agent{}, false
	}
	sc := scopeOf(c)
	var (
		a   store.Agent
		err error
	)
	if id == store.MainAgentID {
		a, err = s.deps.Store.EnsureAgent(c.Request.Context(), mainAgent(sc))
	} else {
		a, err = s.deps.Store.GetAgent(c.Request.Context(), sc, id)
	}
	if err != nil {
		s.fail(c, err, "agent "+strconv.Quote(id))
		return store.Agent{}, false
	}
	return a, true
}

func (s *Server) getAgent(c *gin.Context) {
	if a, ok := s.agentOf(c); ok {
		c.JSON(http.StatusOK, a)
	}
}

func (s *Server) patchAgent(c *gin.Context) {
	a, ok := s.agentOf(c)
	if !ok {
		return
	}
	var body agentBody
	if !bindJSON(c, &body) {
		return
	}
	if body.AgentID != "" && body.AgentID != a.ID {
		writeError(c, http.StatusBadRequest, "invalid_agent", "agent_id cannot be changed")
		return
	}
	if msg, ok := body.validate(false); !ok {
		writeError(c, http.StatusBadRequest, "invalid_agent", msg)
		return
	}
	if !s.toolsExist(c, body.Tools) || !s.checkSkillGrants(c, body.Skills, "invalid_agent") || !s.modelUsable(c, body.Model) {
		return
	}
	updated, err := s.deps.Store.UpdateAgent(c.Request.Context(), a.Scope, a.ID, store.AgentPatch{
		Name: body.Name, SystemPrompt: body.SystemPrompt, Model: body.Model, Tools: body.Tools, Skills: body.Skills,
	})
	if err != nil {
		s.fail(c, err, "agent")
		return
	}
	s.deps.Runtime.AgentChanged(a.Scope, a.ID)
	c.JSON(http.StatusOK, updated)
}

func (s *Server) deleteAgent(c *gin.Context) {
	a, ok := s.agentOf(c)
	if !ok {
		return
	}
	if a.ID == store.MainAgentID {
		writeError(c, http.StatusConflict, "main_agent", "the main agent exists in every scope and cannot be deleted")
		return
	}
	cascade, ok := cascadeOf(c)
	if !ok {
		return
	}
	// The check and the delete (with the memberships, when cascading) are one
	// store transaction.
	err := s.deps.Store.DeleteAgent(c.Request.Context(), a.Scope, a.ID, cascade)
	if errors.Is(err, store.ErrInUse) {
		// Only to name the groups in the answer.
		memberships, _ := s.deps.Store.AgentMemberships(c.Request.Context(), a.Scope, a.ID)
		groups := make([]string, len(memberships))
		for i, m := range memberships {
			groups[i] = m.GroupID
		}
		writeError(c, http.StatusConflict, "in_use", "agent "+a.ID+" is a member of the groups "+strings.Join(groups, ", ")+"; remove it from them first, or delete with ?cascade=true")
		return
	}
	if err != nil {
		s.fail(c, err, "agent")
		return
	}
	s.deps.Runtime.AgentChanged(a.Scope, a.ID)
	c.Status(http.StatusNoContent)
}

type messageBody struct {
	OrgID      string `json:"org_id"`
	UserID     string `json:"user_id"`
	ProjectID  string `json:"project_id"`
	Content    string `json:"content"`
	SessionKey string `json:"session_key"`
}

func (s *Server) postMessage(c *gin.Context) {
	a, ok := s.agentOf(c)
	if !ok {
		return
	}
	var body messageBody
	if !bindJSON(c, &body) {
		return
	}
	if msg, ok := validateInput(body.Content, "content", body.SessionKey); !ok {
		writeError(c, http.StatusBadRequest, "invalid_message", msg)
		return
	}
	m, err := s.deps.Mailbox.Send(c.Request.Context(), store.NewMessage{
		Scope: a.Scope, AgentID: a.ID, SessionKey: sessionOrDefault(body.SessionKey),
		SenderType: store.SenderUser, SenderID: a.Scope.UserID, Content: body.Content,
	})
	if err != nil {
		s.fail(c, err, "message")
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"message_id": m.ID, "agent_id": a.ID, "status": "queued", "seq": m.Seq})
}

func (s *Server) listMessages(c *gin.Context) {
	a, ok := s.agentOf(c)
	if !ok {
		return
	}
	status := c.Query("status")
	if status != "" && status != store.MessageUnread && status != store.MessageRead {
		writeError(c, http.StatusBadRequest, "invalid_status", "status must be unread or read")
		return
	}
	page, ok := pageOf(c)
	if !ok {
		return
	}
	msgs, total, err := s.deps.Store.ListMessages(c.Request.Context(), a.Scope, a.ID, status, page.Page)
	if err != nil {
		s.fail(c, err, "messages")
		return
	}
	c.JSON(http.StatusOK, gin.H{"messages": nonNil(msgs), "total": total, "page": page.number, "limit": page.Limit})
}

func (s *Server) pauseAgent(c *gin.Context)  { s.changeState(c, s.deps.Runtime.Pause) }
func (s *Server) resumeAgent(c *gin.Context) { s.changeState(c, s.deps.Runtime.Resume) }

func (s *Server) changeState(c *gin.Context, change func(context.Context, store.Scope, string) (string, error)) {
	a, ok := s.agentOf(c)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 10*time.Second)
	defer cancel()
	state, err := change(ctx, a.Scope, a.ID)
	if err != nil {
		s.fail(c, err, "agent")
		return
	}
	c.JSON(http.StatusOK, gin.H{"agent_id": a.ID, "state": state})
}

func (s *Server) streamAgent(c *gin.Context) {
	a, ok := s.agentOf(c)
	if !ok {
		return
	}
	s.stream(c, a.Scope, store.EventFilter{AgentID: a.ID}, func(e store.Event) bool { return e.AgentID == a.ID }, nil)
}

// toolsExist writes a 400 naming the unknown tool when list has one.
// ModelChecker says whether a model name can be used (llm.Router does):
// an error wrapping llm.ErrUnknownModel, or another error when the model is
// known but not usable as configured.
type ModelChecker interface {
	CheckModel(model string) error
}

// modelUsable answers 400 unknown_model or model_unavailable and returns
// false when model cannot be used; "" (the default) always can.
func (s *Server) modelUsable(c *gin.Context, model *string) bool {
	if model == nil || *model == "" || s.deps.Models == nil {
		return true
	}
	err := s.deps.Models.CheckModel(*model)
	switch {
	case err == nil:
		return true
	case errors.Is(err, llm.ErrUnknownModel):
		writeError(c, http.StatusBadRequest, "unknown_model", err.Error())
	default:
		writeError(c, http.StatusBadRequest, "model_unavailable", err.Error())
	}
	return false
}

func (s *Server) toolsExist(c *gin.Context, list *[]string) bool {
	if list == nil {
		return true
	}
	var scoped []string
	if s.mcpGrants != nil {
		scoped = s.mcpGrants(c.Request.Context(), scopeOf(c))
	}
	if msg := s.checkTools(*list, scoped...); msg != "" {
		writeError(c, http.StatusBadRequest, "unknown_tool", msg)
		return false
	}
	return true
}

func mainAgent(sc store.Scope) store.Agent {
	return store.Agent{Scope: sc, ID: store.MainAgentID, Name: "Main agent", State: store.AgentIdle}
}

func validateInput(text, field, session string) (string, bool) {
	switch {
	case strings.TrimSpace(text) == "":
		return field + " is required", false
	case len(text) > maxContentLen:
		return field + " must be at most 256 KiB", false
	case len(session) > maxSessionKey:
		return "session_key must be at most 128 characters", false
	}
	return "", true
}

func sessionOrDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

// slugify turns a display name into an agent id candidate.
func slugify(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case b.Len() > 0 && !dash:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 64 {
			break
		}
	}
	return strings.Trim(b.String(), "-_")
}

type pageParams struct {
	store.Page
	number int
}

// pageOf reads ?page (1-based) and ?limit (1-200, default 50).
func pageOf(c *gin.Context) (pageParams, bool) {
	p := pageParams{number: 1, Page: store.Page{Limit: 50}}
	if v := c.Query("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			writeError(c, http.StatusBadRequest, "invalid_page", "page must be a positive integer")
			return p, false
		}
		p.number = n
	}
	var ok bool
	if p.Limit, ok = queryLimit(c, p.Limit, 200); !ok {
		return p, false
	}
	p.Offset = (p.number - 1) * p.Limit
	return p, true
}

// queryLimit reads ?limit (1..most; def when absent), answering 400 otherwise.
func queryLimit(c *gin.Context, def, most int) (int, bool) {
	v := c.Query("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		writeError(c, http.StatusBadRequest, "invalid_limit", "limit must be between 1 and "+strconv.Itoa(most))
		return 0, false
	}
	return n, true
}

// queryCursor reads ?cursor, an id at least least (0 when absent), answering
// 400 invalid_cursor with message otherwise.
func queryCursor(c *gin.Context, least int64, message string) (int64, bool) {
	v := c.Query("cursor")
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < least {
		writeError(c, http.StatusBadRequest, "invalid_cursor", message)
		return 0, false
	}
	return n, true
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

package httpapi

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/mailbox"
	"github.com/openintern/openintern/store"
)

var runIDPattern = regexp.MustCompile(`^run_[0-9a-f-]{36}$`)

type runBody struct {
	OrgID      string `json:"org_id"`
	UserID     string `json:"user_id"`
	ProjectID  string `json:"project_id"`
	SessionKey string `json:"session_key"`
	Input      string `json:"input"`
	AgentID    string `json:"agent_id"`
}

func (s *Server) createRun(c *gin.Context) {
	var body runBody
	if !bindJSON(c, &body) {
		return
	}
	if msg, ok := validateInput(body.Input, "input", body.SessionKey); !ok {
		writeError(c, http.StatusBadRequest, "invalid_run", msg)
		return
	}
	agentID := body.AgentID
	if agentID == "" {
		agentID = store.MainAgentID
	}
	sc := scopeOf(c)
	var err error
	if agentID == store.MainAgentID {
		_, err = s.deps.Store.EnsureAgent(c.Request.Context(), mainAgent(sc))
	} else if !agentIDPattern.MatchString(agentID) {
		err = store.ErrNotFound
	}
	if err != nil {
		s.fail(c, err, "agent "+strconv.Quote(agentID))
		return
	}
	// Any other agent must exist: CreateRun checks it in its own statement,
	// and stores the request's audit record with the run.
	runID := actors.NewRunID()
	record := s.recordInWrite(c, http.StatusCreated, runID)
	run, _, err := s.deps.Store.CreateRun(c.Request.Context(), store.NewRun{
		Scope: sc, RunID: runID, MessageID: mailbox.NewMessageID(), AgentID: agentID,
		SessionKey: sessionOrDefault(body.SessionKey), Input: body.Input,
		SenderType: store.SenderUser, SenderID: sc.UserID, RequireAgent: true, Audit: record,
	})
	if errors.Is(err, store.ErrNotFound) {
		s.fail(c, err, "agent "+strconv.Quote(agentID))
		return
	}
	if err != nil {
		s.fail(c, err, "run")
		return
	}
	s.recordedInWrite(c, record)
	s.deps.Runtime.Wake(sc, agentID)
	c.JSON(http.StatusCreated, gin.H{"run_id": run.ID, "status": run.Status, "created_at": run.CreatedAt, "agent_id": run.AgentID, "session_key": run.SessionKey})
}

// runIDOf is the run id in the path; a malformed id is simply not found.
func runIDOf(c *gin.Context) (string, bool) {
	id := c.Param("run_id")
	if !runIDPattern.MatchString(id) {
		writeError(c, http.StatusNotFound, "not_found", "run "+strconv.Quote(id)+" not found")
		return "", false
	}
	return id, true
}

// runOf loads the run named in the path.
func (s *Server) runOf(c *gin.Context) (store.Run, bool) {
	id, ok := runIDOf(c)
	if !ok {
		return store.Run{}, false
	}
	run, err := s.deps.Store.GetRun(c.Request.Context(), scopeOf(c), id)
	if err != nil {
		s.fail(c, err, "run "+strconv.Quote(id))
		return store.Run{}, false
	}
	return run, true
}

func (s *Server) getRun(c *gin.Context) {
	if run, ok := s.runOf(c); ok {
		c.JSON(http.StatusOK, run)
	}
}

func (s *Server) listRuns(c *gin.Context) {
	page, ok := pageOf(c)
	if !ok {
		return
	}
	f := store.RunFilter{AgentID: c.Query("agent_id"), SessionKey: c.Query("session_key"), Status: c.Query("status"), GroupID: c.Query("group_id")}
	s.writeRuns(c, f, page)
}

func (s *Server) listSessionRuns(c *gin.Context) {
	page, ok := pageOf(c)
	if !ok {
		return
	}
	s.writeRuns(c, store.RunFilter{SessionKey: c.Param("session_key"), AgentID: c.Query("agent_id")}, page)
}

func (s *Server) writeRuns(c *gin.Context, f store.RunFilter, page pageParams) {
	if f.Status != "" && !validRunStatus(f.Status) {
		writeError(c, http.StatusBadRequest, "invalid_status", "status must be pending, running, waiting_approval, completed, failed or cancelled")
		return
	}
	if len(f.SessionKey) > maxSessionKey {
		writeError(c, http.StatusBadRequest, "invalid_session_key", "session_key must be at most 128 characters")
		return
	}
	runs, total, err := s.deps.Store.ListRuns(c.Request.Context(), scopeOf(c), f, page.Page)
	if err != nil {
		s.fail(c, err, "runs")
		return
	}
	c.JSON(http.StatusOK, gin.H{"runs": nonNil(runs), "total": total, "page": page.number, "limit": page.Limit})
}

func validRunStatus(s string) bool {
	switch s {
	case store.RunPending, store.RunRunning, store.RunWaitingApproval, store.RunCompleted, store.RunFailed, store.RunCancelled:
		return true
	}
	return false
}

func (s *Server) listRunEvents(c *gin.Context) {
	run, ok := s.runOf(c)
	if !ok {
		return
	}
	f := store.EventFilter{RunID: run.ID}
	if f.AfterID, ok = queryCursor(c, 0, "cursor must be an event id from next_cursor"); !ok {
		return
	}
	if f.Limit, ok = queryLimit(c, 100, 1000); !ok {
		return
	}
	if v := c.Query("type"); v != "" {
		f.Types = strings.Split(v, ",")
	}
	evs, total, err := s.deps.Store.ListEvents(c.Request.Context(), run.Scope, f)
	if err != nil {
		s.fail(c, err, "events")
		return
	}
	var next any
	if len(evs) == f.Limit {
		next = strconv.FormatInt(evs[len(evs)-1].ID, 10)
	}
	c.JSON(http.StatusOK, gin.H{"events": nonNil(evs), "total": total, "next_cursor": next})
}

// runStreamReader reads a run and its first events at once (see
// store.Store's RunWithEvents). Both stores do; a Store that does not (a
// wrapper of the interface) has its run streams read them apart.
type runStreamReader interface {
	RunWithEvents(ctx context.Context, scope store.Scope, runID string, filter store.EventFilter) (store.Run, []store.Event, error)
}

// streamRun serves a run's stream. It subscribes, then reads the run and its
// first events in one store call (one round trip on PostgreSQL), answering
// 404 before the response starts when there is no such run in the scope.
func (s *Server) streamRun(c *gin.Context) {
	reader, oneRead := s.deps.Store.(runStreamReader)
	lastID, err := lastEventID(c)
	if err != nil {
		// The run's 404 goes before the cursor's 400, which stream answers.
		oneRead = false
	}
	if !oneRead {
		run, ok := s.runOf(c)
		if !ok {
			return
		}
		s.stream(c, run.Scope, store.EventFilter{RunID: run.ID}, func(e store.Event) bool { return e.RunID == run.ID }, &run)
		return
	}
	id, ok := runIDOf(c)
	if !ok {
		return
	}
	scope := scopeOf(c)
	match := func(e store.Event) bool { return e.RunID == id }
	// The first subscription lives as long as the stream, or ends here with
	// a 404; it is made before the read, as stream makes each of its own.
	ctx, cancel := context.WithCancel(c.Request.Context())
	defer cancel()
	live := s.deps.Bus.Subscribe(ctx, scope, match)
	run, evs, err := reader.RunWithEvents(ctx, scope, id, store.EventFilter{AfterID: lastID, Limit: catchUpPage, NoTotal: true})
	if err != nil {
		s.fail(c, err, "run "+strconv.Quote(id))
		return
	}
	s.streamFrom(c, run.Scope, store.EventFilter{RunID: run.ID}, match, &run, &openedRun{live: live, events: evs})
}

func (s *Server) cancelRun(c *gin.Context) {
	run, ok := s.runOf(c)
	if !ok {
		return
	}
	updated, err := s.deps.Runtime.CancelRun(c.Request.Context(), run.Scope, run.ID)
	if errors.Is(err, store.ErrConflict) {
		writeError(c, http.StatusConflict, "run_finished", "run "+run.ID+" has already ended with status "+updated.Status)
		return
	}
	if err != nil {
		s.fail(c, err, "run")
		return
	}
	status := updated.Status
	if status == store.RunRunning {
		status = "cancelling"
	}
	c.JSON(http.StatusAccepted, gin.H{"run_id": updated.ID, "status": status, "cancel_requested": updated.CancelRequested || updated.Status == store.RunCancelled})
}

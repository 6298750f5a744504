package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// routeSpec describes one /api route: the role it needs and what the API
// document (/api/openapi.json) says of it. Every /api route is registered
// with its spec (see register), so none can skip authorization, and the
// document and the authorization matrix test are built from the same list.
type routeSpec struct {
	Method string
	// Path is relative to /api, in gin's syntax (/agents/:agent_id).
	Path string
	// Role is the least role that may call the route.
	Role    auth.Role
	Summary string
	// Tag groups the route in the document (default: its first path segment).
	Tag string
	// Body is a value of the type the handler decodes its JSON body into
	// (agentBody{}), or upload{} for a multipart file; nil: no body. The
	// document's request schema is reflected from it.
	Body any
	// Response is a value of the type of the success answer's JSON (store.Agent{},
	// listOf{...}); nil: no body (Status 204) or none worth describing.
	Response any
	// Status is the success status (default 200).
	Status int
	// Query are the query parameters the handler reads (the scope's
	// org_id/user_id/project_id, which every route takes, are not listed).
	Query []queryParam
	// Stream: the answer is a text/event-stream of events.
	Stream bool
	// Errors are the statuses the handler itself answers besides the ones
	// every route of its kind has (see errorStatuses).
	Errors []int
	// Public routes need no credential and no scope (signing in); Role is "".
	Public bool
	// Secret: the response holds a secret shown once, so it is never kept
	// for an Idempotency-Key replay (the key is refused).
	Secret bool
}

// queryParam is one query parameter of a route.
type queryParam struct {
	Name string
	// Type is the JSON Schema type of the value ("string", "integer", "boolean").
	Type        string
	Description string
	// Enum lists the values accepted, when they are few.
	Enum []string
}

// FullPath is the route as gin reports it (c.FullPath()).
func (r routeSpec) FullPath() string { return "/api" + r.Path }

// mutating reports whether the route changes state (everything but reads).
func (r routeSpec) mutating() bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead
}

// idempotent reports whether the route honours Idempotency-Key: the
// idempotency middleware runs on every POST but the public ones and those
// whose answer holds a secret.
func (r routeSpec) idempotent() bool { return r.Method == http.MethodPost && !r.Public && !r.Secret }

// successStatus is Status, or 200.
func (r routeSpec) successStatus() int {
	if r.Status == 0 {
		return http.StatusOK
	}
	return r.Status
}

// register adds an /api route with its spec: the request is authorized
// against spec.Role before anything else of the route runs but its audit
// record, which is written after everything else, 403s included.
func (s *Server) register(api *gin.RouterGroup, spec routeSpec, handler gin.HandlerFunc) {
	s.specs = append(s.specs, spec)
	idem := s.idempotency
	if spec.Secret {
		idem = refuseIdempotencyKey
	}
	api.Handle(spec.Method, spec.Path, s.audit(spec), s.authorize(spec), idem, handler)
}

// registerPublic adds a route that needs no credential (spec.Public) to a
// group without authentication or scope (see publicGroup).
func (s *Server) registerPublic(group *gin.RouterGroup, spec routeSpec, handler gin.HandlerFunc) {
	spec.Public, spec.Role = true, ""
	s.specs = append(s.specs, spec)
	group.Handle(spec.Method, spec.Path, s.audit(spec), handler)
}

// Routes lists the specs of every registered /api route, in registration order.
func (s *Server) Routes() []routeSpec { return append([]routeSpec(nil), s.specs...) }

// pageQuery are the parameters of a paged list (see pageOf), after extra.
func pageQuery(extra ...queryParam) []queryParam {
	return append(extra,
		queryParam{Name: "page", Type: "integer", Description: "1-based page number (default 1)."},
		queryParam{Name: "limit", Type: "integer", Description: "Items per page, 1-200 (default 50)."})
}

// streamQuery are the parameters of an SSE stream (see stream).
func streamQuery() []queryParam {
	return []queryParam{
		{Name: "last_event_id", Type: "string", Description: "Resume after this event id, like the Last-Event-ID header."},
		{Name: "cursor", Type: "string", Description: "Same as last_event_id."},
		{Name: "from", Type: "string", Enum: []string{"now"}, Description: "now: only events from now on, without the stored history (not for a run's stream)."},
	}
}

// cascadeQuery is ?cascade= of the deletes that can remove group memberships too.
func cascadeQuery() []queryParam {
	return []queryParam{{Name: "cascade", Type: "boolean", Description: "Also remove it from the groups it is a member of (else 409 in_use)."}}
}

// runFilterQuery are GET /api/runs' filters (see listRuns).
func runFilterQuery() []queryParam {
	return []queryParam{
		{Name: "agent_id", Type: "string"},
		{Name: "session_key", Type: "string"},
		{Name: "group_id", Type: "string"},
		runStatusQuery(),
	}
}

func runStatusQuery() queryParam {
	return queryParam{Name: "status", Type: "string", Enum: []string{
		store.RunPending, store.RunRunning, store.RunWaitingApproval, store.RunCompleted, store.RunFailed, store.RunCancelled,
	}}
}

// runEventsQuery are GET /api/runs/:run_id/events' parameters (see listRunEvents).
func runEventsQuery() []queryParam {
	return []queryParam{
		{Name: "cursor", Type: "string", Description: "next_cursor of the previous page."},
		{Name: "limit", Type: "integer", Description: "Events per page, 1-1000 (default 100)."},
		{Name: "type", Type: "string", Description: "Only these event types, comma-separated."},
	}
}

// blackboardQuery are GET /api/groups/:group_id/blackboard's filters (see listBlackboard).
func blackboardQuery() []queryParam {
	return []queryParam{
		{Name: "q", Type: "string", Description: "Search the entries by meaning and keywords instead of listing them."},
		{Name: "kind", Type: "string", Enum: []string{memory.KindFact, memory.KindProposal, memory.KindDecision, memory.KindTodo}},
		{Name: "author", Type: "string", Description: "Only entries of this author (an agent id or user:<user_id>)."},
	}
}

// memorySearchQuery are GET /api/memories/search's parameters (see memoryHandlers.search).
func memorySearchQuery() []queryParam {
	return []queryParam{
		{Name: "q", Type: "string", Description: "What to look for."},
		{Name: "mode", Type: "string", Enum: []string{memory.ModeHybrid, memory.ModeVector, memory.ModeFullText}},
		{Name: "top_k", Type: "integer", Description: "How many results, 1-100."},
		{Name: "type", Type: "string", Description: "episodic, archival or both, comma-separated."},
		{Name: "agent_id", Type: "string"},
		{Name: "group_id", Type: "string"},
	}
}

// messageStatusQuery is GET /api/agents/:agent_id/messages' filter.
func messageStatusQuery() queryParam {
	return queryParam{Name: "status", Type: "string", Enum: []string{store.MessageUnread, store.MessageRead}}
}

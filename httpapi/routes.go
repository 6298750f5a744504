package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
)

// routeSpec describes one /api route: the role it needs and what the API
// document says of it. Every /api route is registered with its spec (see
// register), so none can skip authorization, and the document and the
// authorization matrix test are built from the same list.
type routeSpec struct {
	Method string
	// Path is relative to /api, in gin's syntax (/agents/:agent_id).
	Path string
	// Role is the least role that may call the route.
	Role    auth.Role
	Summary string
	// Public routes need no credential and no scope (signing in); Role is "".
	Public bool
	// Secret: the response holds a secret shown once, so it is never kept
	// for an Idempotency-Key replay (the key is refused).
	Secret bool
}

// FullPath is the route as gin reports it (c.FullPath()).
func (r routeSpec) FullPath() string { return "/api" + r.Path }

// mutating reports whether the route changes state (everything but reads).
func (r routeSpec) mutating() bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead
}

// register adds an /api route with its spec: the request is authorized
// against spec.Role before anything else of the route runs.
func (s *Server) register(api *gin.RouterGroup, spec routeSpec, handler gin.HandlerFunc) {
	s.specs = append(s.specs, spec)
	idem := s.idempotency
	if spec.Secret {
		idem = refuseIdempotencyKey
	}
	api.Handle(spec.Method, spec.Path, s.authorize(spec), idem, handler)
}

// registerPublic adds a route that needs no credential (spec.Public) to a
// group without authentication or scope (see publicGroup).
func (s *Server) registerPublic(group *gin.RouterGroup, spec routeSpec, handler gin.HandlerFunc) {
	spec.Public, spec.Role = true, ""
	s.specs = append(s.specs, spec)
	group.Handle(spec.Method, spec.Path, handler)
}

// Routes lists the specs of every registered /api route, in registration order.
func (s *Server) Routes() []routeSpec { return append([]routeSpec(nil), s.specs...) }

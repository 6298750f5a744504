package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
)

const principalKey = "principal"

// principalOf is who the request acts as (set by authenticate).
func principalOf(c *gin.Context) auth.Principal {
	if p, ok := c.Get(principalKey); ok {
		return p.(auth.Principal)
	}
	return auth.Principal{}
}

// authenticate finds who is calling. With auth off everyone is the anonymous
// admin of the scope the request names (set once scope has run).
func (s *Server) authenticate(c *gin.Context) {
	c.Next()
}

// authorize refuses a principal whose role does not allow the route's.
func (s *Server) authorize(spec routeSpec) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := principalOf(c)
		if p.Via == auth.ViaNone {
			c.Next()
			return
		}
		if !p.Role.Allows(spec.Role) {
			writeError(c, http.StatusForbidden, "forbidden", "this needs the "+string(spec.Role)+" role; the token has "+string(p.Role))
			return
		}
		c.Next()
	}
}

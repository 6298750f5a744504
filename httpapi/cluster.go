package httpapi

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

// Cluster is the daemon's view of the daemons that share its store (one
// node, itself, on SQLite): what GET /api/cluster shows, and whether this
// node is draining, which /readyz answers.
type Cluster interface {
	// Status is this node's id, the nodes, and the scope's live leases:
	// never another scope's agents or groups.
	Status(ctx context.Context, scope store.Scope) (ClusterStatus, error)
	// Draining reports that this node is shutting down: it takes no new
	// work, so load balancers should stop sending it requests.
	Draining() bool
}

// ClusterStatus is GET /api/cluster's answer.
type ClusterStatus struct {
	// NodeID is the node that answered.
	NodeID string `json:"node_id"`
	// Nodes are the daemons that reported recently, live ones first.
	Nodes []store.Node `json:"nodes"`
	// Leases are the caller's scope's live leases: which node owns which
	// of its agents (kind agent) and group runs' orchestration (kind group).
	Leases []store.Lease `json:"leases"`
}

// MountCluster adds GET /api/cluster and makes /readyz fail while the
// node drains.
func (s *Server) MountCluster(cl Cluster) {
	s.cluster = cl
	s.register(s.apiGroup(), routeSpec{Method: http.MethodGet, Path: "/cluster", Role: auth.RoleAdmin,
		Summary:  "The cluster: this node, every daemon on the store (address, version, heartbeat, load, leases held, draining) and the scope's leases",
		Response: ClusterStatus{}}, s.getCluster)
}

func (s *Server) getCluster(c *gin.Context) {
	st, err := s.cluster.Status(c.Request.Context(), scopeOf(c))
	if err != nil {
		s.fail(c, err, "cluster")
		return
	}
	st.Nodes, st.Leases = nonNil(st.Nodes), nonNil(st.Leases)
	c.JSON(http.StatusOK, st)
}

// draining reports whether /readyz must fail because the node drains.
func (s *Server) draining() bool {
	return s.cluster != nil && s.cluster.Draining()
}

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/httpapi"
	"github.com/openintern/openintern/store"
)

// Several daemons (nodes) may share one PostgreSQL database and Redis. The
// runtime owns agents and groups through leases and heartbeats the node; the
// cluster here is the daemon's side of it: it routes each Control to the node
// that should handle it (the owner, else the least loaded), tells the API
// which nodes there are, and says when this node drains.

// routeCacheTTL bounds how stale the node list routing uses may be: a node
// that joins is picked for new work within this long.
const routeCacheTTL = time.Second

// routeListTimeout bounds the read of the node list on a routing path; when
// the store is slow routing uses what it had (or this node).
const routeListTimeout = 2 * time.Second

// removeNodeTimeout bounds taking the node out of the cluster at shutdown.
const removeNodeTimeout = 5 * time.Second

// nodeMemory is how long /api/cluster keeps showing a node that stopped
// heartbeating (as not live) before it forgets it.
const nodeMemory = 5 * time.Minute

// clusterRuntime is what the cluster needs of the actors' runtime.
type clusterRuntime interface {
	Load() int
	Draining() bool
}

// cluster is this daemon as one node of a cluster.
type cluster struct {
	self    store.Node       // ID, Addr, Version, StartedAt
	leases  store.LeaseStore // nil: one daemon per store (SQLite)
	runtime clusterRuntime
	logger  *slog.Logger
	now     func() time.Time
	// draining is set when the daemon begins to drain, before the runtime
	// does, so /readyz fails at once.
	draining atomic.Bool

	mu sync.Mutex
	// candidates are the live nodes not draining, as last read, with the
	// work routed to each since added to its load.
	candidates []store.Node
	readAt     time.Time
	// picked remembers where unowned work went since the list was read, so
	// a second wake for it, sent before its new owner took the lease, goes
	// to the same node.
	picked map[store.LeaseRef]string
}

var _ httpapi.Cluster = (*cluster)(nil)

func newCluster(self store.Node, leases store.LeaseStore, rt clusterRuntime, logger *slog.Logger) *cluster {
	return &cluster{self: self, leases: leases, runtime: rt, logger: logger, now: time.Now}
}

// Draining reports whether this node has begun to drain.
func (c *cluster) Draining() bool { return c.draining.Load() || c.runtime.Draining() }

// selfNow is this node as it is now (its own load and draining state are
// fresher than its last heartbeat's).
func (c *cluster) selfNow() store.Node {
	n := c.self
	n.HeartbeatAt = c.now().UTC()
	n.Load = c.runtime.Load()
	n.Draining = c.Draining()
	n.Live = true
	return n
}

// Status answers GET /api/cluster: the nodes that reported within
// nodeMemory and the scope's live leases. Without leases the cluster is this
// node alone.
func (c *cluster) Status(ctx context.Context, scope store.Scope) (httpapi.ClusterStatus, error) {
	st := httpapi.ClusterStatus{NodeID: c.self.ID}
	if c.leases == nil {
		st.Nodes = []store.Node{c.selfNow()}
		return st, nil
	}
	nodes, err := c.leases.ListNodes(ctx, nodeMemory)
	if err != nil {
		return st, err
	}
	if st.Leases, err = c.leases.ListScopeLeases(ctx, scope); err != nil {
		return st, err
	}
	// This node's entry shows its load and draining as they are now; it may
	// also not have heartbeated yet.
	self := c.selfNow()
	if i := slices.IndexFunc(nodes, func(n store.Node) bool { return n.ID == self.ID }); i >= 0 {
		self.HeartbeatAt, self.Leases = nodes[i].HeartbeatAt, nodes[i].Leases
		nodes[i] = self
	} else {
		nodes = append([]store.Node{self}, nodes...)
	}
	st.Nodes = nodes
	return st, nil
}

// Route names the node a Control should be handled on (events.RouteFunc):
// the node holding its agent's lease (its group's for ControlGroup), else,
// for a wake or a group notice, the least loaded live node that is not
// draining, else this node (""). A store that cannot answer routes here:
// the lease fencing keeps a wrong guess safe.
func (c *cluster) Route(ctx context.Context, ctl events.Control) string {
	if c.leases == nil {
		return ""
	}
	ref := store.LeaseRef{Scope: ctl.Scope, Kind: store.LeaseAgent, Key: ctl.AgentID}
	if ctl.Kind == events.ControlGroup {
		ref = store.LeaseRef{Scope: ctl.Scope, Kind: store.LeaseGroup, Key: ctl.GroupID}
	}
	if ref.Key == "" {
		return ""
	}
	l, err := c.leases.GetLease(ctx, ref)
	switch {
	case err == nil && l.Live:
		return c.local(l.NodeID)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		c.logger.Debug("no lease to route by; handled here", "kind", ref.Kind, "key", ref.Key, "err", err)
		return ""
	}
	// Cancel, pause and resume of work nobody owns change the store, which
	// any node can do: no hop.
	if ctl.Kind != events.ControlWake && ctl.Kind != events.ControlGroup {
		return ""
	}
	return c.local(c.pick(ctx, ref))
}

// local maps this node's id to "" (handle here).
func (c *cluster) local(node string) string {
	if node == c.self.ID {
		return ""
	}
	return node
}

// pick chooses the node for unowned work: the least loaded candidate,
// this node on a tie (no hop), and counts the work against it so the
// next picks spread before the next heartbeats show it.
func (c *cluster) pick(ctx context.Context, ref store.LeaseRef) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now().Sub(c.readAt) >= routeCacheTTL {
		c.refresh(ctx)
	}
	if node, ok := c.picked[ref]; ok {
		return node
	}
	best := -1
	for i, n := range c.candidates {
		if best < 0 || n.Load < c.candidates[best].Load || (n.Load == c.candidates[best].Load && n.ID == c.self.ID) {
			best = i
		}
	}
	if best < 0 {
		return c.self.ID
	}
	c.candidates[best].Load++
	c.picked[ref] = c.candidates[best].ID
	return c.candidates[best].ID
}

// refresh reads the live nodes that take work (c.mu held). On an error it
// keeps none but this node, and tries again after routeCacheTTL.
func (c *cluster) refresh(ctx context.Context) {
	c.readAt = c.now()
	c.picked = map[store.LeaseRef]string{}
	ctx, cancel := context.WithTimeout(ctx, routeListTimeout)
	defer cancel()
	nodes, err := c.leases.ListNodes(ctx, nodeMemory)
	if err != nil {
		c.logger.Debug("node list unavailable; new work stays here", "err", err)
		nodes = nil
	}
	c.candidates = c.candidates[:0]
	for _, n := range nodes {
		if n.ID == c.self.ID {
			continue
		}
		if n.Live && !n.Draining {
			c.candidates = append(c.candidates, n)
		}
	}
	if !c.Draining() {
		self := c.selfNow()
		c.candidates = append(c.candidates, self)
	}
}

// leaseStore is the store's leases on PostgreSQL, which several daemons
// may share; nil on SQLite, which the store keeps to one daemon per file.
func (m *Main) leaseStore() (store.LeaseStore, error) {
	if m.Config.DatabaseURL == "" {
		return nil, nil
	}
	ls, ok := m.Store.(store.LeaseStore)
	if !ok {
		return nil, fmt.Errorf("store %T keeps no leases", m.Store)
	}
	return ls, nil
}

func (m *Main) redisPrefix() string {
	if m.RedisPrefix == "" {
		return "openintern:"
	}
	return m.RedisPrefix
}

// advertiseAddr is where this node's API answers, as the other nodes and
// /api/cluster show it: OPENINTERN_ADVERTISE_ADDR, else the bound address,
// with the host name for a wildcard HOST.
func (m *Main) advertiseAddr() string {
	if m.Config.AdvertiseAddr != "" {
		return m.Config.AdvertiseAddr
	}
	tcp, ok := m.listener.Addr().(*net.TCPAddr)
	if !ok {
		return m.listener.Addr().String()
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

// setDispatcher gives the runtime the way its Controls reach their nodes:
// with leases and Redis, this node's stream and the others' (a control for
// a node that died is claimed by another after a lease TTL); with leases
// and no Redis, this node only, and the runtime's sweep of the store finds
// other nodes' unowned work, later but nothing stranded. A single daemon
// keeps the runtime's own.
func (m *Main) setDispatcher(ctx context.Context, leases store.LeaseStore) error {
	switch {
	case leases == nil:
		return nil
	case m.redis == nil:
		m.Runtime.SetDispatcher(events.LocalDispatcher{Handle: m.Runtime.HandleControl})
		return nil
	}
	d, err := events.NewStreamDispatcher(ctx, m.redis, m.redisPrefix(), m.nodeID, m.cluster.Route, m.Runtime.HandleControl,
		m.Logger.With("component", "dispatcher"), events.WithClaimAfter(time.Duration(m.Config.LeaseTTL)))
	if err != nil {
		return fmt.Errorf("control streams: %w", err)
	}
	m.Runtime.SetDispatcher(d)
	// Closed after the runtime stops (closers run in reverse): its last
	// controls still go out; and before Redis closes.
	m.closers = append(m.closers, func(context.Context) error { return d.Close() })
	return nil
}

// stopRuntime stops the agents and, on a clean stop, takes the node out of
// the cluster at once (its leases released), rather than letting the
// others wait for its heartbeat to age.
func (m *Main) stopRuntime(ctx context.Context, leases store.LeaseStore) error {
	if err := m.Runtime.Stop(ctx); err != nil {
		return err
	}
	if leases == nil {
		return nil
	}
	// Even when the stop used up ctx: the node would otherwise show as live
	// for a lease TTL.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeNodeTimeout)
	defer cancel()
	if err := leases.RemoveNode(rctx, m.nodeID); err != nil {
		return fmt.Errorf("leave the cluster: %w", err)
	}
	return nil
}

// Drain takes the node out of rotation (/readyz answers 503 from now on)
// and hands its agents and groups back: the runtime takes no new leases,
// stops its work at step boundaries and releases what it held, so other
// nodes take it at once. It returns when that is done or ctx ends; Close
// follows either way. HTTP keeps answering meanwhile: requests a load
// balancer still sends are served.
func (m *Main) Drain(ctx context.Context) error {
	if m.cluster == nil {
		return nil
	}
	m.cluster.draining.Store(true)
	if err := m.Runtime.Drain(ctx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}

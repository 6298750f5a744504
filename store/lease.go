package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Several daemons may share one PostgreSQL database. Each agent's work, and
// each group's orchestration, is owned by one daemon (a node) at a time
// through a lease: the node's id, an epoch that grows every time the lease
// changes hands, and an expiry the node keeps pushing forward while it works.
// The writes of a turn and of an orchestration step carry the lease they were
// made under (WithFence) and the store refuses them, in their own
// transaction, when that lease is no longer current (ErrFenced): a node that
// was paused past its expiry, and whose work another node took over, cannot
// write a stale step.

// Lease kinds.
const (
	LeaseAgent = "agent" // Key is the agent id
	LeaseGroup = "group" // Key is the group id: its runs' orchestration
)

// Errors of leases.
var (
	// ErrLeaseHeld: another node holds a live lease (AcquireLease).
	ErrLeaseHeld = errors.New("lease held by another node")
	// ErrFenced: a write made under a lease that is no longer current (taken
	// over, released or expired); nothing of it was stored.
	ErrFenced = errors.New("fenced: lease lost")
	// ErrStoreLocked: another daemon already serves this store (SQLite keeps
	// one daemon per database file).
	ErrStoreLocked = errors.New("store in use by another daemon")
)

// LeaseRef names what a lease is on.
type LeaseRef struct {
	Scope Scope  `json:"-"`
	Kind  string `json:"kind"` // LeaseAgent or LeaseGroup
	Key   string `json:"key"`
}

// Lease is one node's ownership of a LeaseRef.
type Lease struct {
	LeaseRef
	NodeID    string    `json:"node_id"`
	Epoch     int64     `json:"epoch"`
	ExpiresAt time.Time `json:"expires_at"`
	// Live is the store's verdict, on the database's clock, that the lease
	// had not expired when it was read.
	Live bool `json:"live"`
}

// Node is one daemon of a cluster as it reports itself.
type Node struct {
	ID          string    `json:"node_id"`
	Addr        string    `json:"addr"` // where its API answers, as configured (may be empty)
	Version     string    `json:"version"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	Draining    bool      `json:"draining"`
	Load        int       `json:"load"`   // agents and groups it is working for now
	Leases      int       `json:"leases"` // live leases it holds (filled by ListNodes)
	// Live: its heartbeat is younger than the TTL it gave with it (database clock).
	Live bool `json:"live"`
}

// LeaseStore keeps leases and the cluster's membership. Every method is
// unscoped but ListScopeLeases: leases are the daemons' own bookkeeping.
type LeaseStore interface {
	// AcquireLease gives ref to nodeID for ttl: when no lease exists (epoch
	// 1), when the current one has expired or was released (epoch + 1), or
	// when nodeID already holds it (renewed, epoch unchanged). When another
	// node's lease is live it returns that lease and an error wrapping
	// ErrLeaseHeld.
	AcquireLease(ctx context.Context, ref LeaseRef, nodeID string, ttl time.Duration) (Lease, error)
	// RenewLeases pushes the expiry of every live lease nodeID holds to now +
	// ttl and returns them. A lease that another node took over, or that
	// expired before this renewal, is not among them: its work must stop (its
	// fenced writes already fail), and AcquireLease takes it again under a
	// new epoch.
	RenewLeases(ctx context.Context, nodeID string, ttl time.Duration) ([]Lease, error)
	// ReleaseLease ends l at once if it is still current (node and epoch);
	// otherwise it does nothing. The next AcquireLease increments the epoch.
	ReleaseLease(ctx context.Context, l Lease) error
	// GetLease returns ref's lease, live or not; ErrNotFound when it never had one.
	GetLease(ctx context.Context, ref LeaseRef) (Lease, error)
	// ListScopeLeases returns the scope's live leases, for /api/cluster.
	ListScopeLeases(ctx context.Context, scope Scope) ([]Lease, error)

	// HeartbeatNode records n (insert or update by id) with HeartbeatAt =
	// now on the database's clock; the node counts as live for ttl.
	HeartbeatNode(ctx context.Context, n Node, ttl time.Duration) error
	// ListNodes returns the nodes whose heartbeat is younger than
	// 'forgetAfter', live first, each with its count of live leases.
	ListNodes(ctx context.Context, forgetAfter time.Duration) ([]Node, error)
	// RemoveNode forgets a node (a clean exit) and releases its leases.
	RemoveNode(ctx context.Context, nodeID string) error

	// ListUnownedWork returns the agents that have unread messages or a run
	// left running (as ListAgentsWithWork) and the group runs still running
	// (as ActiveGroupRuns) whose agent or group has no live lease of a node
	// other than nodeID: the work nobody is doing, for recovery and the
	// periodic sweep.
	ListUnownedWork(ctx context.Context, nodeID string) ([]AgentRef, []Run, error)
}

type fenceKey struct{}

// WithFence returns a context whose store writes are made under l: the
// writes of a turn (ClaimNextRun, SaveStep, WaitForApproval, FinishRun,
// SetAgentState, CreateRun, AppendEvents) and of an orchestration step
// (CreateGroupRun, SaveStep, FinishRun and CreateRun of a group's runs)
// check, in their own transaction, that l is
// still current (same node and epoch, not expired on the database's clock)
// and fail with ErrFenced, storing nothing, when it is not. A write without a
// fence is not checked (a single daemon, the API's own writes).
func WithFence(ctx context.Context, l Lease) context.Context {
	return context.WithValue(ctx, fenceKey{}, l)
}

// FenceOf returns the lease ctx's writes are fenced by, if any.
func FenceOf(ctx context.Context) (Lease, bool) {
	l, ok := ctx.Value(fenceKey{}).(Lease)
	return l, ok
}

// CheckLeaseRef checks what a lease can be on: a scope, a known kind and a key.
func CheckLeaseRef(ref LeaseRef) error {
	if err := CheckScope(ref.Scope); err != nil {
		return err
	}
	if ref.Kind != LeaseAgent && ref.Kind != LeaseGroup {
		return fmt.Errorf("unknown lease kind %q", ref.Kind)
	}
	if ref.Key == "" {
		return errors.New("a lease needs a key")
	}
	return nil
}

// CheckAcquire checks the arguments of AcquireLease (and the node and ttl of
// RenewLeases and HeartbeatNode, with a zero ref skipped).
func CheckAcquire(ref *LeaseRef, nodeID string, ttl time.Duration) error {
	if ref != nil {
		if err := CheckLeaseRef(*ref); err != nil {
			return err
		}
	}
	if nodeID == "" {
		return errors.New("node id is empty")
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("lease ttl %v is under a millisecond", ttl)
	}
	return nil
}

package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/openintern/openintern/store"
)

// WakeFunc is told that an agent may have new work (a message in its inbox, a
// run to resume), so the daemon that hosts it should activate it.
type WakeFunc func(scope store.Scope, agentID string)

// Waker tells every daemon that an agent may have work.
type Waker interface {
	// Wake calls the WakeFunc of every daemon, this one included, once.
	Wake(ctx context.Context, scope store.Scope, agentID string) error
	// Close stops the waker; safe to call more than once.
	Close() error
}

// LocalWaker is the Waker of a single daemon: Wake calls onWake directly.
type LocalWaker struct {
	onWake WakeFunc
	closed atomic.Bool
}

var _ Waker = (*LocalWaker)(nil)

// NewLocalWaker returns a Waker that calls onWake on the caller's goroutine.
func NewLocalWaker(onWake WakeFunc) *LocalWaker {
	return &LocalWaker{onWake: onWake}
}

// Wake calls onWake(scope, agentID); ErrClosed after Close.
func (w *LocalWaker) Wake(_ context.Context, scope store.Scope, agentID string) error {
	if w.closed.Load() {
		return ErrClosed
	}
	if agentID == "" {
		return errors.New("events: wake: empty agent id")
	}
	w.onWake(scope, agentID)
	return nil
}

// Close makes later Wake calls fail.
func (w *LocalWaker) Close() error {
	w.closed.Store(true)
	return nil
}

// RedisWaker is the Waker of daemons that share a Redis: Wake calls this
// daemon's onWake at once, on the caller's goroutine, then publishes the
// wake-up on the channel "<prefix>wake"; one background goroutine per waker
// receives that channel and calls onWake for the wake-ups of the other
// wakers, skipping its own by a random instance id, so each daemon's onWake
// runs exactly once per Wake.
//
// onWake is therefore called from the goroutines that call Wake and from the
// receiving goroutine, possibly at the same time; it must be safe for
// concurrent use and return quickly (hand the work off), since the receiving
// goroutine waits for it. Pub/sub keeps nothing: a daemon disconnected from
// Redis when a wake-up is published misses it (the waker logs its reconnects),
// so the daemons still need their start-up recovery of agents with work.
type RedisWaker struct {
	client   *redis.Client
	channel  string
	nodeID   string
	instance string
	onWake   WakeFunc
	logger   *slog.Logger
	sub      *redisSubscriber
	pub      *redisPublisher
	closed   atomic.Bool
}

var _ Waker = (*RedisWaker)(nil)

// redisWake is the wire form of one wake-up.
type redisWake struct {
	Node     string      `json:"node"`     // the daemon's node id, for logs
	Instance string      `json:"instance"` // the sending waker's random id
	Scope    store.Scope `json:"scope"`
	AgentID  string      `json:"agent_id"`
}

// NewRedisWaker subscribes to "<prefix>wake" and returns once Redis has
// confirmed the subscription. nodeID names this daemon in the messages and
// logs; it need not be unique, since each waker also tags its messages with a
// random instance id. ctx bounds only the start; Close stops the waker. The
// client stays the caller's. logger may be nil (slog.Default). Of the options
// only WithPingInterval applies.
func NewRedisWaker(ctx context.Context, client *redis.Client, prefix, nodeID string, onWake WakeFunc,
	logger *slog.Logger, opts ...RedisOption) (*RedisWaker, error) {
	if client == nil {
		return nil, errors.New("events: NewRedisWaker: nil redis client")
	}
	if onWake == nil {
		return nil, errors.New("events: NewRedisWaker: nil onWake")
	}
	if logger == nil {
		logger = slog.Default()
	}
	o := applyRedisOptions(opts)
	instance, err := randomID()
	if err != nil {
		return nil, fmt.Errorf("events: waker instance id: %w", err)
	}
	w := &RedisWaker{
		client:   client,
		channel:  prefix + "wake",
		nodeID:   nodeID,
		instance: instance,
		onWake:   onWake,
	}
	w.logger = logger.With("component", "events.redis_waker", "channel", w.channel, "node", nodeID, "instance", instance)
	w.sub, err = startRedisSubscriber(ctx, client, w.channel, o.pingInterval, w.logger, w.receive, w.resynced)
	if err != nil {
		return nil, fmt.Errorf("events: start redis waker: %w", err)
	}
	w.pub = newRedisPublisher(client, w.logger)
	return w, nil
}

// Wake calls this daemon's onWake, then publishes the wake-up to the others,
// best effort and bounded like a bus's publish, so a Redis outage does not
// hold up the caller (the others miss the wake-up, as when disconnected;
// see RedisWaker). The error is that of the
// publish (the local call has been made anyway), or ErrClosed after Close,
// when nothing is called.
func (w *RedisWaker) Wake(ctx context.Context, scope store.Scope, agentID string) error {
	if w.closed.Load() {
		return ErrClosed
	}
	if agentID == "" {
		return errors.New("events: wake: empty agent id")
	}
	payload, err := json.Marshal(redisWake{Node: w.nodeID, Instance: w.instance, Scope: scope, AgentID: agentID})
	if err != nil {
		return fmt.Errorf("events: wake: encode: %w", err)
	}
	w.onWake(scope, agentID)
	if err := w.pub.publish(ctx, w.channel, payload); err != nil {
		return fmt.Errorf("events: wake %s: publish: %w", agentID, err)
	}
	return nil
}

// Close stops the receiving goroutine and waits for it. It is safe to call
// more than once.
func (w *RedisWaker) Close() error {
	if w.closed.Swap(true) {
		return nil
	}
	w.sub.close()
	return w.pub.close()
}

func (w *RedisWaker) receive(payload string) {
	var m redisWake
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		w.logger.Error("undecodable message on the wake channel", "err", err)
		return
	}
	if m.Instance == w.instance {
		return // onWake already ran in Wake
	}
	if m.AgentID == "" {
		w.logger.Error("wake-up without agent id", "from", m.Node)
		return
	}
	w.onWake(m.Scope, m.AgentID)
}

func (w *RedisWaker) resynced() {
	w.logger.Warn("wake-ups published while the redis connection was down were missed")
}

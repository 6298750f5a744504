package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/openintern/openintern/store"
)

// ErrClosed is returned by the Redis buses and wakers once they are closed.
var ErrClosed = errors.New("events: closed")

const (
	// redisSubscribeTimeout bounds waiting for Redis to confirm a SUBSCRIBE.
	redisSubscribeTimeout = 10 * time.Second
	// defaultRedisPingInterval: an idle subscriber pings Redis this often and
	// reconnects when a ping stays unanswered for as long again.
	defaultRedisPingInterval = 15 * time.Second
	// Reconnection backoff bounds.
	redisMinBackoff = 100 * time.Millisecond
	redisMaxBackoff = 5 * time.Second
)

// RedisOption tunes a RedisBus or RedisWaker.
type RedisOption func(*redisOptions)

type redisOptions struct {
	bufferSize   int
	pingInterval time.Duration
}

// WithBufferSize sets the per-subscriber buffer of a RedisBus (default
// DefaultBufferSize). A RedisWaker ignores it.
func WithBufferSize(n int) RedisOption {
	return func(o *redisOptions) { o.bufferSize = n }
}

// WithPingInterval sets how long the subscriber connection may stay silent
// before it pings Redis; an unanswered ping makes it reconnect (default 15s).
func WithPingInterval(d time.Duration) RedisOption {
	return func(o *redisOptions) {
		if d > 0 {
			o.pingInterval = d
		}
	}
}

func applyRedisOptions(opts []RedisOption) redisOptions {
	o := redisOptions{bufferSize: DefaultBufferSize, pingInterval: defaultRedisPingInterval}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// RedisBus is the Bus shared by several daemons through Redis pub/sub: every
// Publish goes out as one JSON message on the channel "<prefix>events", and
// one background goroutine per bus receives that channel and fans the events
// of the other daemons out to this daemon's subscribers through a MemoryBus.
//
// Own events are delivered once, locally: Publish fans out to the local
// subscribers first, at once and whether or not Redis is reachable, then
// publishes to Redis tagged with this bus's random node id, and the receiving
// goroutine skips the messages carrying that id. The events of one Publish
// call stay together and in order on every daemon; the calls of one
// goroutine arrive in the order they were made.
//
// Pub/sub keeps nothing: a daemon that is not connected when a message is
// published never sees it. So when the subscriber connection is lost, the bus
// subscribes again and then drops all its local subscribers (closes their
// channels), which resume from the store with their last event id, as after
// being too slow. Publishing to Redis is best effort and bounded (see
// redisPublisher): a PUBLISH that fails is logged, rate-limited, and the
// events are in the store.
type RedisBus struct {
	local   *MemoryBus
	client  *redis.Client
	channel string
	node    string
	logger  *slog.Logger
	sub     *redisSubscriber
	pub     *redisPublisher
	closed  atomic.Bool
}

var _ Bus = (*RedisBus)(nil)

// redisBatch is the wire form of one Publish call.
type redisBatch struct {
	Node   string            `json:"node"`
	Events []json.RawMessage `json:"events"`
}

// redisEvent is the wire form of one event: store.Event leaves its Scope and
// RunPrev out of JSON, so they travel beside it (a stream on another daemon
// forwards a run's event without reading the store only by its RunPrev).
type redisEvent struct {
	Scope   store.Scope `json:"scope"`
	Event   store.Event `json:"event"`
	RunPrev int64       `json:"run_prev,omitempty"`
}

// NewRedisBus subscribes to "<prefix>events" and returns once Redis has
// confirmed the subscription, so every event published after it returns is
// received. ctx bounds only that start; Close stops the bus. The client stays
// the caller's: Close does not close it. logger may be nil (slog.Default).
func NewRedisBus(ctx context.Context, client *redis.Client, prefix string, logger *slog.Logger, opts ...RedisOption) (*RedisBus, error) {
	if client == nil {
		return nil, errors.New("events: NewRedisBus: nil redis client")
	}
	if logger == nil {
		logger = slog.Default()
	}
	o := applyRedisOptions(opts)
	node, err := randomID()
	if err != nil {
		return nil, fmt.Errorf("events: node id: %w", err)
	}
	b := &RedisBus{
		local:   NewMemoryBus(o.bufferSize),
		client:  client,
		channel: prefix + "events",
		node:    node,
	}
	b.logger = logger.With("component", "events.redis_bus", "channel", b.channel, "node", node)
	b.sub, err = startRedisSubscriber(ctx, client, b.channel, o.pingInterval, b.logger, b.receive, b.resynced)
	if err != nil {
		return nil, fmt.Errorf("events: start redis bus: %w", err)
	}
	b.pub = newRedisPublisher(client, b.logger)
	return b, nil
}

// Publish delivers the events to this daemon's subscribers, then sends them
// to the other daemons through Redis. It does not wait for any subscriber; it
// waits for Redis to take the message at most redisPublishTimeout (whatever
// ctx says), and not at all for a second after a failed publish.
func (b *RedisBus) Publish(ctx context.Context, events ...store.Event) {
	if len(events) == 0 || b.closed.Load() {
		return
	}
	b.local.Publish(ctx, events...)

	batch := redisBatch{Node: b.node, Events: make([]json.RawMessage, 0, len(events))}
	for _, ev := range events {
		raw, err := json.Marshal(redisEvent{Scope: ev.Scope, Event: ev, RunPrev: ev.RunPrev})
		if err != nil {
			b.logger.Error("event not sent to other daemons: cannot encode it",
				"event_id", ev.ID, "type", ev.Type, "err", err)
			continue
		}
		batch.Events = append(batch.Events, raw)
	}
	if len(batch.Events) == 0 {
		return
	}
	payload, err := json.Marshal(batch)
	if err != nil {
		b.logger.Error("events not sent to other daemons: cannot encode batch", "err", err)
		return
	}
	_ = b.pub.publish(ctx, b.channel, payload) // logged by the publisher
}

// Subscribe delivers the events of scope that match accepts, from this
// daemon and from the others; see Bus.
func (b *RedisBus) Subscribe(ctx context.Context, scope store.Scope, match func(store.Event) bool) <-chan store.Event {
	return b.local.Subscribe(ctx, scope, match)
}

// Healthy reports whether the bus receives the other daemons' events: false
// from the loss of its Redis subscription until it has subscribed again (and
// dropped its subscribers), and after Close. Streams poll the store while it
// is false.
func (b *RedisBus) Healthy() bool { return !b.closed.Load() && b.sub.connected.Load() }

// Close stops the receiving goroutine, waits for it and ends every local
// subscription. It is safe to call more than once.
func (b *RedisBus) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.sub.close()
	_ = b.pub.close()
	return b.local.Close()
}

// receive handles one message of the channel (on the subscriber goroutine).
func (b *RedisBus) receive(payload string) {
	var batch redisBatch
	if err := json.Unmarshal([]byte(payload), &batch); err != nil {
		b.logger.Error("undecodable message on the events channel", "err", err)
		return
	}
	if batch.Node == b.node {
		return // already delivered locally by Publish
	}
	events := make([]store.Event, 0, len(batch.Events))
	for _, raw := range batch.Events {
		var we redisEvent
		if err := json.Unmarshal(raw, &we); err != nil {
			b.logger.Error("undecodable event on the events channel", "from", batch.Node, "err", err)
			continue
		}
		ev := we.Event
		ev.Scope, ev.RunPrev = we.Scope, we.RunPrev
		if string(ev.Payload) == "null" {
			ev.Payload = nil // a nil payload travels as null
		}
		events = append(events, ev)
	}
	b.local.Publish(context.Background(), events...)
}

// resynced runs after the subscriber reconnected: whatever was published in
// between was missed, so the local subscribers resume from the store.
func (b *RedisBus) resynced() {
	if n := b.local.dropAll(); n > 0 {
		b.logger.Warn("dropped live subscribers after a redis reconnect; they resume from the store", "subscribers", n)
	}
}

// redisSubscriber owns the goroutine that receives one Redis pub/sub channel.
// It pings an idle connection, and after an error subscribes again with
// backoff on a new connection, then calls resynced.
type redisSubscriber struct {
	client       *redis.Client
	channel      string
	pingInterval time.Duration
	logger       *slog.Logger
	handle       func(payload string)
	resynced     func()

	ctx    context.Context // canceled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	ps     *redis.PubSub // the current subscription, closed by close
	closed bool

	// connected is false from the loss of the subscription until Redis
	// confirms the next one: meanwhile the other daemons' messages are lost.
	connected atomic.Bool
}

func startRedisSubscriber(ctx context.Context, client *redis.Client, channel string, pingInterval time.Duration,
	logger *slog.Logger, handle func(string), resynced func()) (*redisSubscriber, error) {
	ps, err := subscribeConfirmed(ctx, client, channel)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &redisSubscriber{
		ctx:          sctx,
		cancel:       cancel,
		client:       client,
		channel:      channel,
		pingInterval: pingInterval,
		logger:       logger,
		handle:       handle,
		resynced:     resynced,
		ps:           ps,
	}
	s.connected.Store(true)
	s.wg.Add(1)
	go s.run(ps)
	return s, nil
}

// subscribeConfirmed subscribes to channel and waits for Redis's confirmation.
func subscribeConfirmed(ctx context.Context, client *redis.Client, channel string) (*redis.PubSub, error) {
	ps := client.Subscribe(ctx, channel)
	if err := confirmSubscription(ctx, ps, channel); err != nil {
		_ = ps.Close()
		return nil, err
	}
	return ps, nil
}

// confirmSubscription waits for the reply to the SUBSCRIBE of ps.
func confirmSubscription(ctx context.Context, ps *redis.PubSub, channel string) error {
	ctx, cancel := context.WithTimeout(ctx, redisSubscribeTimeout)
	defer cancel()
	msg, err := ps.Receive(ctx)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", channel, err)
	}
	if _, ok := msg.(*redis.Subscription); !ok {
		return fmt.Errorf("subscribe to %s: unexpected first reply %T", channel, msg)
	}
	return nil
}

func (s *redisSubscriber) run(ps *redis.PubSub) {
	defer s.wg.Done()
	for {
		err := s.receive(ps)
		s.connected.Store(false)
		_ = ps.Close()
		if s.isClosed() {
			return
		}
		s.logger.Warn("redis pub/sub connection lost; subscribing again", "err", err)
		ps = s.resubscribe()
		if ps == nil {
			return // closed while waiting
		}
		s.logger.Info("redis pub/sub subscribed again")
		s.connected.Store(true)
		s.resynced()
	}
}

// receive hands the channel's messages to handle until the connection fails.
func (s *redisSubscriber) receive(ps *redis.PubSub) error {
	ctx := s.ctx
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, s.pingInterval)
		if err != nil {
			if s.isClosed() {
				return ErrClosed
			}
			if !isTimeout(err) {
				return fmt.Errorf("receive: %w", err)
			}
			if pinged {
				return fmt.Errorf("no answer to ping within %s: %w", s.pingInterval, err)
			}
			if err := ps.Ping(ctx); err != nil {
				return fmt.Errorf("ping: %w", err)
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Message:
			s.handle(m.Payload)
		case *redis.Subscription, *redis.Pong:
		default:
			s.logger.Debug("ignoring unexpected pub/sub reply", "type", fmt.Sprintf("%T", msg))
		}
	}
}

// resubscribe subscribes again, with backoff, until it succeeds (the new
// subscription) or the subscriber is closed (nil).
func (s *redisSubscriber) resubscribe() *redis.PubSub {
	backoff := redisMinBackoff
	timer := time.NewTimer(backoff)
	defer timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return nil
		case <-timer.C:
		}
		ps := s.client.Subscribe(s.ctx, s.channel)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = ps.Close()
			return nil
		}
		s.ps = ps // so that close can interrupt the confirmation
		s.mu.Unlock()
		err := confirmSubscription(s.ctx, ps, s.channel)
		if err == nil {
			return ps
		}
		_ = ps.Close()
		if s.isClosed() {
			return nil
		}
		s.logger.Warn("redis pub/sub subscribe failed; retrying", "err", err, "retry_in", backoff)
		backoff = min(2*backoff, redisMaxBackoff)
		timer.Reset(backoff)
	}
}

func (s *redisSubscriber) isClosed() bool { return s.ctx.Err() != nil }

// close stops the goroutine and waits for it; safe to call more than once.
func (s *redisSubscriber) close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.cancel()
		if s.ps != nil {
			_ = s.ps.Close() // unblocks a pending receive
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func randomID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

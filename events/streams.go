package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// DefaultClaimAfter is how long a control may sit unacknowledged on a
	// node's stream before another node takes it: the default lease TTL, so
	// a node that stopped reading has also lost its leases by then.
	DefaultClaimAfter = 15 * time.Second
	// DefaultStreamMaxLen bounds each node's stream (approximately): far
	// more than a live node ever has unread, so trimming only ever drops the
	// oldest, long handled, entries.
	DefaultStreamMaxLen = 10000

	// streamGroup is the consumer group of every node's stream; each node
	// reads its own stream as the consumer named by its node id.
	streamGroup = "ctl"
	// streamField is the entry field holding the JSON Control.
	streamField = "c"
	// streamBlock bounds one blocking XREADGROUP, and so how long Close
	// waits for the reader (go-redis does not interrupt a blocked read).
	streamBlock = 500 * time.Millisecond
	// streamBatch is how many entries one read or claim takes.
	streamBatch = 100
)

// StreamOption tunes a StreamDispatcher.
type StreamOption func(*streamOptions)

type streamOptions struct {
	claimAfter    time.Duration
	claimInterval time.Duration
	maxLen        int64
}

// WithClaimAfter sets how long a control may wait on another node's stream,
// unread or unacknowledged, before this node handles it (default
// DefaultClaimAfter).
func WithClaimAfter(d time.Duration) StreamOption {
	return func(o *streamOptions) {
		if d > 0 {
			o.claimAfter = d
		}
	}
}

// WithClaimInterval sets how often the dispatcher looks for controls to
// claim on the other nodes' streams (default a third of ClaimAfter).
func WithClaimInterval(d time.Duration) StreamOption {
	return func(o *streamOptions) {
		if d > 0 {
			o.claimInterval = d
		}
	}
}

// WithStreamMaxLen sets the approximate length each stream is trimmed to
// (default DefaultStreamMaxLen).
func WithStreamMaxLen(n int64) StreamOption {
	return func(o *streamOptions) {
		if n > 0 {
			o.maxLen = n
		}
	}
}

// StreamDispatcher is the Dispatcher of daemons that share a Redis. Each
// node has a stream "<prefix>ctl:<nodeID>" with one consumer group; a
// background goroutine reads the node's own stream (XREADGROUP), hands each
// control to the HandleFunc and acknowledges it (XACK). Dispatch asks the
// RouteFunc for the control's node and either handles the control at once
// or XADDs it to that node's stream (trimmed to an approximate MAXLEN).
//
// Delivery is at least once: an entry is acknowledged after it is handled,
// so a node that dies between the two, or before it reads at all, leaves it
// pending or unread; every claim interval each dispatcher scans the other
// nodes' streams and handles the entries that waited longer than ClaimAfter
// (XAUTOCLAIM for pending ones; unread ones it reads as a consumer of that
// group itself). A restarted node first re-reads its own pending entries.
//
// Redis being unreachable never loses a control: Dispatch then handles it
// on this node and says so in its error (the store's lease fencing keeps
// that safe). The reader and claimer retry with backoff, recreate the group
// when Redis lost it (NOGROUP), log once per outage and recover by
// themselves. Healthy reports whether the last read reached Redis.
type StreamDispatcher struct {
	reader *redis.Client // the reader's and claimer's own client, closed by Close
	send   *redisPublisher
	prefix string
	node   string
	stream string
	route  RouteFunc
	handle HandleFunc
	logger *slog.Logger
	opts   streamOptions

	healthy atomic.Bool
	closed  atomic.Bool
	ctx     context.Context // canceled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

var _ Dispatcher = (*StreamDispatcher)(nil)

// NewStreamDispatcher creates this node's stream and consumer group and
// starts the reader and claimer; ctx bounds only that start (Redis must be
// reachable). route and handle are required; route may return "" for this
// node. The client stays the caller's: Close does not close it. logger may
// be nil (slog.Default).
func NewStreamDispatcher(ctx context.Context, client *redis.Client, prefix, nodeID string, route RouteFunc,
	handle HandleFunc, logger *slog.Logger, opts ...StreamOption) (*StreamDispatcher, error) {
	switch {
	case client == nil:
		return nil, errors.New("events: NewStreamDispatcher: nil redis client")
	case nodeID == "":
		return nil, errors.New("events: NewStreamDispatcher: empty node id")
	case route == nil || handle == nil:
		return nil, errors.New("events: NewStreamDispatcher: nil route or handle")
	}
	if logger == nil {
		logger = slog.Default()
	}
	o := streamOptions{claimAfter: DefaultClaimAfter, maxLen: DefaultStreamMaxLen}
	for _, opt := range opts {
		opt(&o)
	}
	if o.claimInterval <= 0 {
		o.claimInterval = o.claimAfter / 3
	}

	// The reader retries by itself, with backoff and a log once per outage,
	// so its client must not also retry each command for seconds.
	ropts := *client.Options()
	ropts.MaxRetries = -1
	ropts.PoolSize = 4
	ropts.MinIdleConns = 0
	ropts.Dialer = nil // the shared client's dialer reads the shared options
	d := &StreamDispatcher{
		reader: redis.NewClient(&ropts),
		prefix: prefix,
		node:   nodeID,
		stream: streamKey(prefix, nodeID),
		route:  route,
		handle: handle,
		opts:   o,
	}
	d.logger = logger.With("component", "events.stream_dispatcher", "node", nodeID, "stream", d.stream)
	d.send = newRedisPublisher(client, d.logger)
	d.send.failNote = "redis unreachable; controls for other nodes are handled on this one until it is back"
	if err := d.ensureGroup(ctx, d.stream, true); err != nil {
		_ = d.reader.Close()
		_ = d.send.close()
		return nil, fmt.Errorf("events: start stream dispatcher: %w", err)
	}
	d.healthy.Store(true)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(2)
	go d.readLoop()
	go d.claimLoop()
	return d, nil
}

func streamKey(prefix, nodeID string) string { return prefix + "ctl:" + nodeID }

// Dispatch handles c here when it routes to this node, else adds it to its
// node's stream, waiting for Redis at most about redisPublishTimeout. When
// that fails c is handled here and the error says so. ErrClosed after Close,
// when nothing is handled.
func (d *StreamDispatcher) Dispatch(ctx context.Context, c Control) error {
	if d.closed.Load() {
		return ErrClosed
	}
	node := d.route(ctx, c)
	if node == "" || node == d.node {
		d.handle(c)
		return nil
	}
	c.From = d.node
	payload, err := json.Marshal(c)
	if err != nil {
		d.handle(c)
		return fmt.Errorf("events: dispatch %s to node %s: encode: %w; handled on this node", c.Kind, node, err)
	}
	err = d.send.do(ctx, func(ctx context.Context, cl *redis.Client) error {
		return cl.XAdd(ctx, &redis.XAddArgs{
			Stream: streamKey(d.prefix, node),
			MaxLen: d.opts.maxLen,
			Approx: true,
			Values: []any{streamField, payload},
		}).Err()
	})
	if err != nil {
		d.handle(c)
		return fmt.Errorf("events: dispatch %s to node %s: redis unreachable, handled on this node instead: %w", c.Kind, node, err)
	}
	return nil
}

// Healthy reports whether the dispatcher's last read of its stream reached
// Redis.
func (d *StreamDispatcher) Healthy() bool { return d.healthy.Load() && !d.closed.Load() }

// Close stops the reader and claimer and waits for them. Entries read but
// not yet acknowledged stay pending: this node re-reads them when it starts
// again, or another claims them. Safe to call more than once.
func (d *StreamDispatcher) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	d.cancel()
	d.wg.Wait()
	return errors.Join(d.reader.Close(), d.send.close())
}

// ensureGroup creates the consumer group of stream, from its first entry:
// a group lost with a Redis restart must still deliver what was added to
// the stream before the node created it again.
func (d *StreamDispatcher) ensureGroup(ctx context.Context, stream string, mkStream bool) error {
	var err error
	if mkStream {
		err = d.reader.XGroupCreateMkStream(ctx, stream, streamGroup, "0").Err()
	} else {
		err = d.reader.XGroupCreate(ctx, stream, streamGroup, "0").Err()
	}
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create group of %s: %w", stream, err)
	}
	return nil
}

func isNoGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOGROUP") }

// readLoop reads this node's stream until Close, and after any failure
// retries with backoff, re-reading its own pending entries first.
func (d *StreamDispatcher) readLoop() {
	defer d.wg.Done()
	backoff := redisMinBackoff
	pending := true // the entries a previous run of this node read but did not acknowledge
	for d.ctx.Err() == nil {
		err := d.readOnce(&pending)
		if err == nil {
			d.up()
			backoff = redisMinBackoff
			continue
		}
		if d.ctx.Err() != nil {
			return
		}
		if isNoGroup(err) { // Redis lost the stream or group (a restart without persistence)
			if err = d.ensureGroup(d.ctx, d.stream, true); err == nil {
				d.logger.Warn("consumer group was missing; created it again")
				continue
			}
		}
		d.down(err)
		pending = true
		if !sleepCtx(d.ctx, backoff) {
			return
		}
		backoff = min(2*backoff, redisMaxBackoff)
	}
}

// readOnce handles one batch: of this consumer's pending entries while
// *pending, else of new entries (blocking up to streamBlock).
func (d *StreamDispatcher) readOnce(pending *bool) error {
	id, block := ">", streamBlock
	if *pending {
		id, block = "0", -1
	}
	res, err := d.reader.XReadGroup(d.ctx, &redis.XReadGroupArgs{
		Group: streamGroup, Consumer: d.node, Streams: []string{d.stream, id}, Count: streamBatch, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return err
	}
	n := 0
	for _, s := range res {
		n += len(s.Messages)
		if err := d.handleEntries(d.ctx, d.stream, s.Messages); err != nil {
			return err
		}
	}
	if *pending && n < streamBatch {
		*pending = false
	}
	return nil
}

// handleEntries hands each entry's control to handle, then acknowledges
// them all. An entry that does not decode is logged and acknowledged.
func (d *StreamDispatcher) handleEntries(ctx context.Context, stream string, msgs []redis.XMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]string, 0, len(msgs))
	for _, m := range msgs {
		ids = append(ids, m.ID)
		raw, _ := m.Values[streamField].(string)
		if raw == "" {
			continue // trimmed away (claimed after deletion) or foreign
		}
		var c Control
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			d.logger.Error("undecodable control on a stream; dropped", "from_stream", stream, "id", m.ID, "err", err)
			continue
		}
		d.handle(c)
	}
	if err := d.reader.XAck(ctx, stream, streamGroup, ids...).Err(); err != nil {
		return fmt.Errorf("ack %d entries of %s: %w", len(ids), stream, err)
	}
	return nil
}

// down records a failed read, logging only the first of an outage.
func (d *StreamDispatcher) down(err error) {
	if d.healthy.Swap(false) {
		d.logger.Warn("redis unreachable; controls for this node wait in its stream (or are handled by their senders) until it is back", "err", err)
	}
}

func (d *StreamDispatcher) up() {
	if !d.healthy.Swap(true) {
		d.logger.Info("redis reachable again; reading this node's controls")
	}
}

// claimLoop takes over, every claim interval, the controls that waited too
// long on the other nodes' streams.
func (d *StreamDispatcher) claimLoop() {
	defer d.wg.Done()
	t := time.NewTicker(d.opts.claimInterval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		if err := d.claimRound(d.ctx); err != nil && d.ctx.Err() == nil && d.Healthy() {
			// While Redis is down the reader has logged the outage once.
			d.logger.Warn("claiming other nodes' controls failed; retrying next round", "err", err)
		}
	}
}

// claimRound scans for the other nodes' streams (SCAN finds them even after
// Redis lost everything but what senders added since) and claims on each.
func (d *StreamDispatcher) claimRound(ctx context.Context) error {
	now, err := d.reader.Time(ctx).Result()
	if err != nil {
		return fmt.Errorf("time: %w", err)
	}
	var errs []error
	iter := d.reader.ScanType(ctx, 0, escapeGlob(d.prefix)+"ctl:*", 100, "stream").Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		if key == d.stream {
			continue
		}
		if err := d.claimStream(ctx, key, now); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	if err := iter.Err(); err != nil {
		errs = append(errs, fmt.Errorf("scan: %w", err))
	}
	return errors.Join(errs...)
}

// claimStream handles the entries of another node's stream that were read
// but not acknowledged for ClaimAfter, then those added more than
// ClaimAfter ago (by Redis's clock, now) and not read at all.
func (d *StreamDispatcher) claimStream(ctx context.Context, key string, now time.Time) error {
	start := "0-0"
	for {
		msgs, next, err := d.reader.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: key, Group: streamGroup, Consumer: d.node, MinIdle: d.opts.claimAfter, Start: start, Count: streamBatch,
		}).Result()
		if isNoGroup(err) {
			// Nobody reads this stream since Redis lost its group: create it
			// so that its unread entries can be taken below.
			if err := d.ensureGroup(ctx, key, false); err != nil {
				return err
			}
			break
		}
		if err != nil {
			return fmt.Errorf("xautoclaim: %w", err)
		}
		if len(msgs) > 0 {
			d.logger.Info("claimed controls left pending on another node's stream", "from_stream", key, "entries", len(msgs))
		}
		if err := d.handleEntries(ctx, key, msgs); err != nil {
			return err
		}
		if next == "0-0" || next == "" {
			break
		}
		start = next
	}
	return d.claimUnread(ctx, key, now)
}

// claimUnread reads, as a consumer of key's group, the entries nobody read
// within ClaimAfter: their node is not reading its stream.
func (d *StreamDispatcher) claimUnread(ctx context.Context, key string, now time.Time) error {
	groups, err := d.reader.XInfoGroups(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("xinfo groups: %w", err)
	}
	last := ""
	for _, g := range groups {
		if g.Name == streamGroup {
			last = g.LastDeliveredID
		}
	}
	if last == "" {
		return nil
	}
	entries, err := d.reader.XRangeN(ctx, key, "("+last, "+", streamBatch).Result()
	if err != nil {
		return fmt.Errorf("xrange: %w", err)
	}
	cutoff := now.Add(-d.opts.claimAfter).UnixMilli()
	stale := 0
	for _, e := range entries {
		if ms, ok := entryMillis(e.ID); ok && ms <= cutoff {
			stale++
		} else {
			break
		}
	}
	if stale == 0 {
		return nil
	}
	// XREADGROUP delivers in id order from the group's last delivered id,
	// so these are the stale entries just seen (or, if the node woke up and
	// read them meanwhile, the next ones: delivered twice at worst).
	res, err := d.reader.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: streamGroup, Consumer: d.node, Streams: []string{key, ">"}, Count: int64(stale), Block: -1,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("xreadgroup: %w", err)
	}
	for _, s := range res {
		d.logger.Info("claimed controls left unread on another node's stream", "from_stream", key, "entries", len(s.Messages))
		if err := d.handleEntries(ctx, key, s.Messages); err != nil {
			return err
		}
	}
	return nil
}

// entryMillis is the Redis time, in Unix milliseconds, at which the entry
// with stream id id was added.
func entryMillis(id string) (int64, bool) {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	return n, err == nil
}

// escapeGlob quotes the glob metacharacters of s for a SCAN MATCH pattern.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

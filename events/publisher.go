package events

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// redisPublishTimeout bounds one PUBLISH of a bus or waker. Publishing is
	// on a turn's path and the store already holds what is published (streams
	// catch up from it), so a slow Redis must not slow the turn.
	redisPublishTimeout = 250 * time.Millisecond
	// redisPublishPause: after a failed PUBLISH, publishes are skipped for
	// this long instead of each waiting for a Redis that is down.
	redisPublishPause = time.Second
	// redisPublishLogEvery rate-limits the log of failed publishes.
	redisPublishLogEvery = 10 * time.Second
)

// errPublishPaused is what a publish skipped after a recent failure returns.
var errPublishPaused = errors.New("redis publish paused after a failure")

// redisPublisher sends the PUBLISHes of a bus or waker on a client of its
// own that never retries and waits at most redisPublishTimeout, because the
// caller's client may retry and redial for seconds. After a failure it skips
// publishes for redisPublishPause, and it logs failures at most once per
// redisPublishLogEvery with how many there were.
type redisPublisher struct {
	client *redis.Client
	logger *slog.Logger
	// failNote is the warning logged when sends fail: what the failure costs.
	failNote string

	mu         sync.Mutex
	pausedTill time.Time
	failed     int // failed or skipped since the last log
	lastLog    time.Time
	down       bool
}

func newRedisPublisher(shared *redis.Client, logger *slog.Logger) *redisPublisher {
	opts := *shared.Options()
	opts.MaxRetries = -1 // none
	opts.DialerRetries = 1
	opts.DialerRetryTimeout = time.Millisecond
	opts.DialTimeout = redisPublishTimeout
	opts.ReadTimeout = redisPublishTimeout
	opts.WriteTimeout = redisPublishTimeout
	opts.PoolTimeout = redisPublishTimeout
	opts.ContextTimeoutEnabled = true
	opts.Dialer = nil // the shared client's dialer reads the shared options' timeouts
	opts.MinIdleConns = 0
	return &redisPublisher{client: redis.NewClient(&opts), logger: logger,
		failNote: "redis publish failed; other daemons miss live events until it works again (the store has them)"}
}

// publish sends payload on channel, best effort: it returns within about
// redisPublishTimeout whatever ctx says (an event already stored must reach
// the other daemons even when the request that made it ends), and at once
// while paused after a failure.
func (p *redisPublisher) publish(ctx context.Context, channel string, payload []byte) error {
	return p.do(ctx, func(ctx context.Context, c *redis.Client) error {
		return c.Publish(ctx, channel, payload).Err()
	})
}

// do runs send on the publisher's client under the same bounds and pause as
// publish (a StreamDispatcher's XADDs use it).
func (p *redisPublisher) do(ctx context.Context, send func(context.Context, *redis.Client) error) error {
	now := time.Now()
	p.mu.Lock()
	if now.Before(p.pausedTill) {
		p.failed++
		p.logLocked(now, errPublishPaused)
		p.mu.Unlock()
		return errPublishPaused
	}
	p.mu.Unlock()

	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisPublishTimeout)
	err := send(pctx, p.client)
	cancel()

	now = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.pausedTill = now.Add(redisPublishPause)
		p.failed++
		p.logLocked(now, err)
		return err
	}
	if p.down {
		p.down = false
		p.logger.Info("redis publish works again", "failed_meanwhile", p.failed)
		p.failed = 0
	}
	return nil
}

// logLocked logs a failure: the first of an outage at once, then at most
// every redisPublishLogEvery.
func (p *redisPublisher) logLocked(now time.Time, err error) {
	if p.down && now.Sub(p.lastLog) < redisPublishLogEvery {
		return
	}
	p.down = true
	p.lastLog = now
	p.logger.Warn(p.failNote, "failed", p.failed, "err", err)
	p.failed = 0
}

func (p *redisPublisher) close() error { return p.client.Close() }

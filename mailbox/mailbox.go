// Package mailbox is the durable inbox of every agent: store first, then wake.
//
// Send returns only once the message is committed, so a 202 from the API means
// the message survives a crash. Concurrent senders share commits (group commit):
// while one batch is being written, the next one gathers, and each caller gets
// its answer when the batch holding its message is durable.
package mailbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/openintern/openintern/store"
)

// Store is what the mailbox needs from the database.
type Store interface {
	EnqueueMessages(ctx context.Context, msgs []store.NewMessage) ([]store.Message, error)
}

// Waker tells an agent it has mail. It must not block.
type Waker interface {
	Wake(scope store.Scope, agentID string)
}

// ErrClosed is returned by Send after Stop.
var ErrClosed = errors.New("mailbox: closed")

// MaxBatch bounds how many messages share one commit.
const MaxBatch = 256

type request struct {
	ctx   context.Context
	msg   store.NewMessage
	reply chan result
}

type result struct {
	msg store.Message
	err error
}

// DefaultCommitTimeout bounds one batch commit.
const DefaultCommitTimeout = 10 * time.Second

// Option configures a Mailbox.
type Option func(*Mailbox)

// WithCommitTimeout bounds each batch commit (default DefaultCommitTimeout;
// d <= 0 keeps it): when the store hangs, senders get an error wrapping
// context.DeadlineExceeded instead of waiting forever.
func WithCommitTimeout(d time.Duration) Option {
	return func(m *Mailbox) {
		if d > 0 {
			m.commitTimeout = d
		}
	}
}

// Observer is told of each batch commit: how many messages it held and how
// long the store took (also when it failed), for metrics.
type Observer interface {
	BatchCommitted(size int, d time.Duration, err error)
}

// WithObserver reports every batch commit to o.
func WithObserver(o Observer) Option {
	return func(m *Mailbox) {
		if o != nil {
			m.observer = o
		}
	}
}

type nopObserver struct{}

func (nopObserver) BatchCommitted(int, time.Duration, error) {}

// Mailbox batches inbox writes and wakes agents after their messages are durable.
type Mailbox struct {
	store         Store
	waker         Waker
	logger        *slog.Logger
	commitTimeout time.Duration
	observer      Observer

	requests chan request
	// mu orders Send against Stop: once closed is set no request enters the
	// queue, so the committer's final drain sees every accepted message.
	mu       sync.RWMutex
	closed   bool
	started  bool
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// New returns a mailbox; call Start before Send.
func New(st Store, waker Waker, logger *slog.Logger, opts ...Option) *Mailbox {
	m := &Mailbox{
		store:         st,
		waker:         waker,
		logger:        logger,
		commitTimeout: DefaultCommitTimeout,
		observer:      nopObserver{},
		requests:      make(chan request, MaxBatch),
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// NewMessageID returns a fresh message id.
func NewMessageID() string { return "msg_" + uuid.Must(uuid.NewV7()).String() }

// Start runs the committer until Stop.
func (m *Mailbox) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.closed {
		return
	}
	m.started = true
	go m.commitLoop()
}

// Stop finishes the batches already queued and stops; safe twice and without Start.
func (m *Mailbox) Stop(ctx context.Context) error {
	m.stopOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		close(m.stop)
		if !m.started {
			close(m.done)
		}
		m.mu.Unlock()
	})
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mailbox: stop: %w", ctx.Err())
	}
}

// Send stores the message durably, then wakes its agent. The message's ID is
// assigned here when empty.
func (m *Mailbox) Send(ctx context.Context, msg store.NewMessage) (store.Message, error) {
	if msg.ID == "" {
		msg.ID = NewMessageID()
	}
	req := request{ctx: ctx, msg: msg, reply: make(chan result, 1)}
	m.mu.RLock()
	if m.closed || !m.started {
		m.mu.RUnlock()
		return store.Message{}, ErrClosed
	}
	select {
	case m.requests <- req:
	case <-ctx.Done():
		m.mu.RUnlock()
		return store.Message{}, ctx.Err()
	}
	m.mu.RUnlock()
	// Once queued, the message may be committed even if ctx ends; wait for the
	// verdict so the caller never reports failure for a stored message.
	r := <-req.reply
	return r.msg, r.err
}

func (m *Mailbox) commitLoop() {
	defer close(m.done)
	batch := make([]request, 0, MaxBatch)
	for {
		batch = batch[:0]
		select {
		case req := <-m.requests:
			batch = append(batch, req)
		case <-m.stop:
			m.drainAfterStop()
			return
		}
	gather:
		for len(batch) < MaxBatch {
			select {
			case req := <-m.requests:
				batch = append(batch, req)
			default:
				break gather
			}
		}
		m.commit(batch)
	}
}

// drainAfterStop commits what was queued before Stop so no accepted Send is dropped.
func (m *Mailbox) drainAfterStop() {
	for {
		select {
		case req := <-m.requests:
			m.commit([]request{req})
		default:
			return
		}
	}
}

func (m *Mailbox) commit(batch []request) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply <- result{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	msgs := make([]store.NewMessage, len(live))
	for i, r := range live {
		msgs[i] = r.msg
	}
	// The batch is written with a context of its own: callers' contexts must not
	// abort a commit that other callers share, and a hung store must not hold
	// every sender (and the batches behind them) forever.
	ctx, cancel := context.WithTimeout(context.Background(), m.commitTimeout)
	started := time.Now()
	stored, err := m.store.EnqueueMessages(ctx, msgs)
	timedOut := ctx.Err()
	cancel()
	m.observer.BatchCommitted(len(msgs), time.Since(started), err)
	if err != nil && timedOut != nil {
		// Out of time: the store is not answering, and retrying row by row
		// would wait as long again for each.
		for _, r := range live {
			r.reply <- result{err: fmt.Errorf("mailbox: enqueue: %w", errors.Join(err, timedOut))}
		}
		return
	}
	if err != nil && len(live) > 1 {
		// One bad row must not fail its neighbours: retry them one by one. A
		// conflict is expected: a tool call run again after a crash re-sends
		// its message under the same id, and finds it stored.
		level := slog.LevelWarn
		if errors.Is(err, store.ErrConflict) {
			level = slog.LevelDebug
		}
		m.logger.Log(context.Background(), level, "mailbox: batch commit failed, retrying singly", "size", len(live), "err", err)
		for _, r := range live {
			m.commit([]request{r})
		}
		return
	}
	if err != nil {
		live[0].reply <- result{err: fmt.Errorf("mailbox: enqueue: %w", err)}
		return
	}
	woken := make(map[wakeKey]bool, len(stored))
	for i, r := range live {
		r.reply <- result{msg: stored[i]}
		k := wakeKey{msgs[i].Scope, msgs[i].AgentID}
		if !woken[k] {
			woken[k] = true
			m.waker.Wake(k.scope, k.agentID)
		}
	}
}

type wakeKey struct {
	scope   store.Scope
	agentID string
}

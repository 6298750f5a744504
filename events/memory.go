package events

import (
	"context"
	"sync"

	"github.com/openintern/openintern/store"
)

// DefaultBufferSize is the per-subscriber buffer of a bus made with a size <= 0.
const DefaultBufferSize = 256

// MemoryBus is the in-process Bus: Publish hands each event to the buffered
// channel of every matching subscriber without ever waiting; a subscriber whose
// buffer is full is dropped (its channel closed) so that it resumes from the
// store. It starts no goroutine of its own: a subscription whose ctx ends is
// removed by a context.AfterFunc callback, which Close and drops cancel.
//
// The events of one Publish call reach each subscriber together and in order,
// and calls to Publish are delivered in the order they take the bus's lock.
// match runs under that lock, so it must be quick and must not call the bus.
type MemoryBus struct {
	bufferSize int

	mu     sync.Mutex
	subs   map[*subscription]struct{}
	closed bool
}

type subscription struct {
	scope store.Scope
	match func(store.Event) bool
	ch    chan store.Event
	stop  func() bool // cancels the ctx.Done callback
}

var _ Bus = (*MemoryBus)(nil)

// NewMemoryBus returns a bus whose subscribers each buffer bufferSize events
// (DefaultBufferSize when bufferSize <= 0).
func NewMemoryBus(bufferSize int) *MemoryBus {
	if bufferSize <= 0 {
		bufferSize = DefaultBufferSize
	}
	return &MemoryBus{bufferSize: bufferSize, subs: make(map[*subscription]struct{})}
}

// Healthy is always true: every event of the process goes through the bus.
func (b *MemoryBus) Healthy() bool { return true }

// Publish delivers the events to the subscribers of their scopes. It never
// blocks: a subscriber with a full buffer is dropped. ctx is not used: the
// in-process fan-out cannot wait.
func (b *MemoryBus) Publish(_ context.Context, events ...store.Event) {
	if len(events) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	for _, ev := range events {
		for s := range b.subs {
			if s.scope != ev.Scope || (s.match != nil && !s.match(ev)) {
				continue
			}
			select {
			case s.ch <- ev:
			default:
				b.removeLocked(s) // too slow: it resumes from the store
			}
		}
	}
}

// Subscribe delivers every event of scope that match accepts (every event when
// match is nil) until ctx ends, the subscriber is dropped or the bus is
// closed; the channel is closed then. A subscription made after Close gets a
// closed channel.
func (b *MemoryBus) Subscribe(ctx context.Context, scope store.Scope, match func(store.Event) bool) <-chan store.Event {
	s := &subscription{scope: scope, match: match, ch: make(chan store.Event, b.bufferSize)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.ch)
		return s.ch
	}
	b.subs[s] = struct{}{}
	// AfterFunc takes its own lock, so registering it under b.mu cannot
	// deadlock even when ctx is already done: the callback runs in its own
	// goroutine and waits for b.mu.
	s.stop = context.AfterFunc(ctx, func() { b.remove(s) })
	return s.ch
}

// Close ends every subscription and makes later Publish calls no-ops. It is
// safe to call more than once.
func (b *MemoryBus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	for s := range b.subs {
		b.removeLocked(s)
	}
	return nil
}

// dropAll ends every current subscription but keeps the bus open: the
// subscribers resume from the store. RedisBus calls it when it may have missed
// messages.
func (b *MemoryBus) dropAll() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.subs)
	for s := range b.subs {
		b.removeLocked(s)
	}
	return n
}

func (b *MemoryBus) remove(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.removeLocked(s)
}

// removeLocked closes the subscription's channel once; b.mu must be held.
func (b *MemoryBus) removeLocked(s *subscription) {
	if _, ok := b.subs[s]; !ok {
		return
	}
	delete(b.subs, s)
	if s.stop != nil {
		s.stop()
	}
	close(s.ch)
}

// Package events carries stored and live events from the agents that produce
// them to the streams that watch them: in process by default, through Redis
// pub/sub when REDIS_URL is set so several daemons see each other's events.
package events

import (
	"context"

	"github.com/openintern/openintern/store"
)

// Bus fans events out to live subscribers. Publishing never blocks on a slow
// subscriber: a subscriber whose buffer is full is dropped (its channel is
// closed) and must resume from the store with its last event id.
type Bus interface {
	Publish(ctx context.Context, events ...store.Event)
	// Subscribe delivers every event of the scope that match accepts, until ctx
	// ends or the subscription is dropped; the channel is closed then.
	Subscribe(ctx context.Context, scope store.Scope, match func(store.Event) bool) <-chan store.Event
	Close() error
}

// HealthReporter is a Bus that can stop receiving the other daemons' events
// (a RedisBus whose connection is lost). Its subscribers still get this
// daemon's events, so a stream must read the store often while it is
// unhealthy to see the others'.
type HealthReporter interface {
	Healthy() bool
}

// LiveHealthy reports whether b currently delivers every daemon's events: a
// bus that does not report its health (in process, where every event is
// local) always does.
func LiveHealthy(b Bus) bool {
	if h, ok := b.(HealthReporter); ok {
		return h.Healthy()
	}
	return true
}

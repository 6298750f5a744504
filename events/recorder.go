package events

import (
	"context"

	"github.com/openintern/openintern/store"
)

// Recorder publishes what a store call has just stored. The store is the
// source of truth: only events it stored go live, only after they are
// committed, and with the ids it gave them. Every "store, then publish" goes
// through it, as in
//
//	stored, err := rec.Stored(st.SaveStep(ctx, scope, runID, cp, events))
type Recorder struct{ Bus Bus }

// Stored publishes evs when err is nil and passes both on.
func (r Recorder) Stored(evs []store.Event, err error) ([]store.Event, error) {
	if err == nil && len(evs) > 0 {
		// Not the caller's context: the events are committed, and a
		// subscriber should see them even if the call that stored them is
		// being cancelled.
		r.Bus.Publish(context.Background(), evs...)
	}
	return evs, err
}

// StoredOne is Stored for a call that stores one event.
func (r Recorder) StoredOne(ev store.Event, err error) (store.Event, error) {
	if err == nil {
		r.Bus.Publish(context.Background(), ev)
	}
	return ev, err
}

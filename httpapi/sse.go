package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/store"
)

// degradedPoll is how often a stream reads the store while the bus does not
// deliver the other daemons' events (Redis lost): slower than live, but
// nothing stalls until the bus recovers.
const degradedPoll = 500 * time.Millisecond

// catchUpPage is how many stored events a stream reads at a time.
const catchUpPage = 500

// terminalRunEvents end a run's stream.
var terminalRunEvents = map[string]bool{"run.completed": true, "run.failed": true, "run.cancelled": true}

// stream serves events as Server-Sent Events with no gap and no duplicate.
// Stored events are read from the store, after the client's Last-Event-ID
// and then after the last id sent: the live feed mostly only says when to
// read. Events are published in whatever order their writers finish, not in
// id order, so an event forwarded straight from the feed could jump ahead of
// a lower id still on its way, and a resume point after it would skip that
// id; the store answers in id order and, within a scope, shows its events as
// a prefix (see the stores' event-id notes). The exception is a run's stream:
// a live event whose RunPrev is the last event of the run sent (or says it
// is the run's first, when none was) has no earlier event of the run left to
// come, so it is sent as it comes, and a turn costs no store read per event
// while its events arrive in order. Live-only events
// (id 0, e.g. llm.token) are forwarded as they come, without an id line. The
// stream subscribes before it first reads the store, so nothing committed in
// between goes unnoticed, and it reads the store again at every heartbeat in
// case the feed lost a publish. While the bus reports itself unhealthy (see
// events.LiveHealthy) it reads the store every degradedPoll instead; when
// the bus recovers it drops its subscribers, so the stream subscribes again
// and is live. When run is set (as read before the call), the stream is that
// run's and ends after the run ends. A run's stream may instead open with
// its first subscription made and, after it, the run and its first events
// read at once (streamFrom): one store round trip before its first event.
func (s *Server) stream(c *gin.Context, scope store.Scope, filter store.EventFilter, match func(store.Event) bool, run *store.Run) {
	s.streamFrom(c, scope, filter, match, run, nil)
}

// runFinished reads whether the run has ended; false when it cannot tell.
func (s *Server) runFinished(ctx context.Context, scope store.Scope, runID string) bool {
	r, err := s.deps.Store.GetRun(ctx, scope, runID)
	return err == nil && store.RunFinished(r.Status)
}

// openedRun is what a run's stream did before its response: it subscribed
// (live), then read the run and its first page of events after the client's
// cursor (events), in that order.
type openedRun struct {
	live   <-chan store.Event
	events []store.Event
}

// streamFrom is stream, whose first subscription, when opened is set, is
// opened.live and whose first catch-up starts with opened.events; run is
// then the one read with them. The run's status was read before its events,
// so it decides whether the run ended as a status read before a replay does.
func (s *Server) streamFrom(c *gin.Context, scope store.Scope, filter store.EventFilter, match func(store.Event) bool, run *store.Run, opened *openedRun) {
	runID := ""
	if run != nil {
		runID = run.ID
	}
	if refused := s.streams.acquire(scope); refused != "" {
		c.Header("Retry-After", strconv.Itoa(streamRetryAfter))
		writeError(c, http.StatusTooManyRequests, "too_many_streams", "too many open streams: "+refused+"; close one or retry later")
		return
	}
	defer s.streams.release(scope)
	lastID, err := lastEventID(c)
	if err != nil {
		writeError(c, http.StatusBadRequest, "invalid_cursor", err.Error())
		return
	}
	// ?from=now: only what happens from now on. "Now" is fixed before the
	// response starts, so whatever the client does once it has the response
	// is after it; the ready event tells the client the id to resume from.
	fromNow := lastID == 0 && runID == "" && c.Query("from") == "now"
	if fromNow {
		latest, err := s.deps.Store.LatestEventID(c.Request.Context(), scope, filter)
		if err != nil {
			s.fail(c, err, "events")
			return
		}
		lastID = latest
	}
	flusher, ok := c.Writer.(http.Flusher)
	if !ok {
		writeError(c, http.StatusInternalServerError, "internal", "streaming unsupported")
		return
	}
	if g := s.deps.SSEClients; g != nil {
		g.Inc()
		defer g.Dec()
	}
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	w := c.Writer
	fmt.Fprint(w, ": stream open\n\n")
	flusher.Flush()

	ctx := c.Request.Context()
	heartbeat := time.NewTicker(s.deps.Heartbeat)
	defer heartbeat.Stop()
	poll := time.NewTicker(degradedPoll)
	defer poll.Stop()

	send := func(e store.Event) error {
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if e.ID > 0 {
			_, err = fmt.Fprintf(w, "id: %d\ndata: %s\n\n", e.ID, data)
		} else {
			_, err = fmt.Fprintf(w, "data: %s\n\n", data)
		}
		return err
	}
	end := func(reason string) {
		fmt.Fprintf(w, "event: end\ndata: {\"reason\":%q}\n\n", reason)
		flusher.Flush()
	}
	// sendStored sends stored events that follow lastID. ended: the run's
	// terminal event was sent, or the client is gone.
	sendStored := func(evs []store.Event) (ended bool) {
		for _, e := range evs {
			if send(e) != nil {
				return true
			}
			lastID = e.ID
			if runID != "" && terminalRunEvents[e.Type] {
				end(e.Type)
				return true
			}
		}
		flusher.Flush()
		return false
	}
	// catchUp sends every stored event after lastID.
	catchUp := func() (ended bool, err error) {
		for {
			f := filter
			f.AfterID, f.Limit, f.NoTotal = lastID, catchUpPage, true
			evs, _, err := s.deps.Store.ListEvents(ctx, scope, f)
			if err != nil {
				return ctx.Err() != nil, err
			}
			if sendStored(evs) {
				return true, nil
			}
			if len(evs) < f.Limit {
				return false, nil
			}
		}
	}

	if fromNow {
		fmt.Fprintf(w, "id: %d\nevent: ready\ndata: {\"last_event_id\":%d}\n\n", lastID, lastID)
		flusher.Flush()
	}

	for subscribed := false; ctx.Err() == nil; subscribed = true {
		// A subscription can be dropped when this client falls behind; then we
		// subscribe again and catch up from the store, so nothing is lost.
		var live <-chan store.Event
		read := true // the replay reads the store
		if !subscribed && opened != nil {
			live = opened.live
			if sendStored(opened.events) {
				return
			}
			// A full page may have more after it.
			read = len(opened.events) >= catchUpPage
		} else {
			live = s.deps.Bus.Subscribe(ctx, scope, match)
		}
		// The run's status read before replaying: its terminal event is stored
		// with that status, so a run already finished then has all its events
		// in the replay below, and one not finished ends by its terminal event,
		// which the replay or the feed brings. The caller's read serves for
		// the first subscription, except for a pending run read before it: a
		// pending run is cancelled without its terminal event (that is
		// appended after), which the subscription would miss. One read after
		// the subscription (opened) is followed live, and the heartbeat reads
		// it again in case that append failed. A subscription after a
		// dropped one reads it again.
		finished := false
		if run != nil {
			status := run.Status
			if subscribed || (status == store.RunPending && opened == nil) {
				status = ""
				if r, err := s.deps.Store.GetRun(ctx, scope, runID); err == nil {
					status = r.Status
				}
			}
			finished = store.RunFinished(status)
		}
		if read {
			if ended, err := catchUp(); ended || err != nil {
				if err != nil && !ended {
					s.deps.Logger.Warn("sse replay failed", "err", err)
				}
				return
			}
		}
		if finished {
			end("run.finished")
			return
		}
	live:
		for {
			select {
			case <-ctx.Done():
				return
			case <-heartbeat.C:
				if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
					return
				}
				flusher.Flush()
				// A run that ended without its terminal event (a pending
				// run's cancel whose append failed) ends its stream here;
				// its status is read before the replay, as above.
				finished := runID != "" && s.runFinished(ctx, scope, runID)
				if ended, err := catchUp(); ended {
					return
				} else if err != nil {
					s.deps.Logger.Warn("sse catch-up failed; retrying at the next event or heartbeat", "err", err)
				} else if finished {
					end("run.finished")
					return
				}
			case <-poll.C:
				if events.LiveHealthy(s.deps.Bus) {
					continue
				}
				if ended, err := catchUp(); ended {
					return
				} else if err != nil {
					s.deps.Logger.Debug("sse poll of the store failed; retrying", "err", err)
				}
			case e, ok := <-live:
				if !ok {
					break live
				}
				// lastID is the run's last event sent, or the client's resume
				// point; RunPrev is a run's event id (or -1), so it can only
				// match a resume point that is the run's event the client has.
				switch {
				case e.ID == 0:
					if send(e) != nil {
						return
					}
				case e.ID <= lastID:
				case runID != "" && e.RunPrev != 0 && (e.RunPrev == lastID || (e.RunPrev == -1 && lastID == 0)):
					if send(e) != nil {
						return
					}
					lastID = e.ID
					if terminalRunEvents[e.Type] {
						end(e.Type)
						return
					}
				default:
					if ended, err := catchUp(); ended {
						return
					} else if err != nil {
						s.deps.Logger.Warn("sse catch-up failed; retrying at the next event or heartbeat", "err", err)
					}
				}
				// A step's events are published together: the last of those
				// already queued flushes them all, in one write to the client.
				if len(live) == 0 {
					flusher.Flush()
				}
			}
		}
	}
}

// lastEventID reads the resume cursor: the Last-Event-ID header (EventSource
// sends it on reconnect), else ?last_event_id or ?cursor.
func lastEventID(c *gin.Context) (int64, error) {
	v := firstOf(c.GetHeader("Last-Event-ID"), c.Query("last_event_id"), c.Query("cursor"))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("Last-Event-ID must be an event id")
	}
	return n, nil
}

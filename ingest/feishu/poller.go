package feishu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/openintern/openintern/store"
)

// NewSyncJob is the job that syncs a connector of scope.
func NewSyncJob(scope store.Scope, connectorID string) store.NewJob {
	params, _ := json.Marshal(SyncParams{ConnectorID: connectorID})
	return store.NewJob{Scope: scope, ID: "job_" + strings.ReplaceAll(uuid.NewString(), "-", ""), Kind: store.KindFeishuSync, Params: params}
}

// Poller queues a sync of every enabled connector once per Interval. Each
// daemon may run one: whether a connector is due, and whether a sync of it
// is already queued or running, is decided in the store's transaction
// (QueueFeishuSync), so daemons polling together queue one job.
type Poller struct {
	Store    store.FeishuStore
	Interval time.Duration
	// Wake is called after a job was queued (the runner's Wake).
	Wake   func()
	Logger *slog.Logger
}

// Run polls until ctx ends.
func (p Poller) Run(ctx context.Context) {
	if p.Interval <= 0 {
		return
	}
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Looking more often than the interval means a connector is at most a
	// quarter interval late, and a new one is picked up soon.
	every := min(max(p.Interval/4, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := p.Once(ctx, time.Now()); err != nil && ctx.Err() == nil {
			log.Warn("feishu: poll connectors", "err", err)
		} else if n > 0 {
			log.Info("feishu: syncs queued by the poll", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Once queues the syncs due at now; how many it queued.
func (p Poller) Once(ctx context.Context, now time.Time) (int, error) {
	due, err := p.Store.ListDueFeishuConnectors(ctx, now.Add(-p.Interval), 100)
	if err != nil {
		return 0, fmt.Errorf("list due connectors: %w", err)
	}
	queued := 0
	for _, c := range due {
		_, err := p.Store.QueueFeishuSync(ctx, c.Scope, c.ID, NewSyncJob(c.Scope, c.ID), p.Interval)
		switch {
		case err == nil:
			queued++
		case errors.Is(err, store.ErrSyncActive), errors.Is(err, store.ErrNotDue), errors.Is(err, store.ErrNotFound):
		default:
			return queued, fmt.Errorf("queue a sync of %s: %w", c.ID, err)
		}
	}
	if queued > 0 && p.Wake != nil {
		p.Wake()
	}
	return queued, nil
}

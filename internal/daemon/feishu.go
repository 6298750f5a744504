package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/openintern/openintern/httpapi"
	"github.com/openintern/openintern/ingest"
	"github.com/openintern/openintern/ingest/feishu"
	"github.com/openintern/openintern/store"
)

// feishuKinds are the job kinds of the Feishu connectors: feishu_sync,
// with a client when the config has an app (without one a sync job that
// was queued before fails saying so).
func (m *Main) feishuKinds(mem ingest.Memories) ([]ingest.Kind, error) {
	fs, ok := m.Store.(store.FeishuStore)
	if !ok {
		return nil, nil
	}
	var client *feishu.Client
	if f := m.Config.Feishu; f.Ready() {
		retries := f.MaxRetries
		if retries == 0 {
			retries = -1 // the config's 0 is none; the client's 0 is its default
		}
		var err error
		client, err = feishu.NewClient(feishu.Config{BaseURL: f.BaseURL, AppID: f.AppID, AppSecret: f.AppSecret,
			Timeout: time.Duration(f.TimeoutMs) * time.Millisecond, MaxRetries: retries, Logger: m.Logger.With("component", "feishu")})
		if err != nil {
			return nil, err
		}
	}
	return []ingest.Kind{feishu.Sync{Store: fs, Memories: mem, Client: client}}, nil
}

// mountFeishu adds the /api/feishu routes.
func (m *Main) mountFeishu(runner *ingest.Runner) {
	fs, ok := m.Store.(store.FeishuStore)
	if !ok {
		return
	}
	m.API.MountFeishu(httpapi.FeishuConfig{Store: fs, Configured: m.Config.Feishu.Ready() && runner.HasKind(store.KindFeishuSync),
		NewJob: feishu.NewSyncJob, Wake: runner.Wake})
}

// startFeishuPoller queues a sync of each enabled connector every
// pollIntervalMs, in one goroutine that ends at shutdown.
func (m *Main) startFeishuPoller(runner *ingest.Runner) {
	fs, ok := m.Store.(store.FeishuStore)
	f := m.Config.Feishu
	if !ok || !f.Ready() || f.PollIntervalMs <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	p := feishu.Poller{Store: fs, Interval: time.Duration(f.PollIntervalMs) * time.Millisecond, Wake: runner.Wake,
		Logger: m.Logger.With("component", "feishu")}
	wg.Go(func() { p.Run(ctx) })
	m.closers = append(m.closers, func(context.Context) error { cancel(); wg.Wait(); return nil })
}

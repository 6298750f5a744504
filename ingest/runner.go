package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/openintern/openintern/store"
)

// Kind is one kind of job (local_files; later feishu_sync, mineru): it does
// a claimed job's work through the Job handle, item by item, saving progress
// and a checkpoint as it goes so a resumed job skips finished items.
type Kind interface {
	Name() string
	Run(ctx context.Context, j *Job) error
}

// ErrCancelled is returned by Job.Save once a cancel of the job was
// requested; a kind returns it (or any error wrapping it) to end the job
// cancelled.
var ErrCancelled = errors.New("job cancelled by request")

// Job is a claimed job as its kind sees it. Its progress is the kind's to
// change between Saves; Save stores it, renews the lease and reports a
// cancel request.
type Job struct {
	store.Job
	runner *Runner

	mu       sync.Mutex
	progress store.JobProgress
}

// Update changes the job's progress (under the lock the heartbeat reads it
// with); Save stores it.
func (j *Job) Update(fn func(p *store.JobProgress)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	fn(&j.progress)
}

// Checkpoint decodes the job's checkpoint into v; false when there is none
// (a fresh job).
func (j *Job) Checkpoint(v any) (bool, error) {
	if len(j.progress.Checkpoint) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(j.progress.Checkpoint, v); err != nil {
		return false, fmt.Errorf("job %s: bad checkpoint: %w", j.ID, err)
	}
	return true, nil
}

// ItemFailed counts a failed item and keeps its error (up to store.MaxJobErrors).
func (j *Job) ItemFailed(item string, err error) {
	j.Update(func(p *store.JobProgress) {
		p.Counts.Failed++
		if len(p.Errors) < store.MaxJobErrors {
			p.Errors = append(p.Errors, store.JobError{Item: item, Message: err.Error()})
		}
	})
}

// Save stores the progress with checkpoint (nil keeps the last one) and
// renews the lease; ErrCancelled when a cancel was requested.
func (j *Job) Save(ctx context.Context, checkpoint any) error {
	if checkpoint != nil {
		b, err := json.Marshal(checkpoint)
		if err != nil {
			return fmt.Errorf("job %s: checkpoint: %w", j.ID, err)
		}
		j.Update(func(p *store.JobProgress) { p.Checkpoint = b })
	}
	p := j.snapshot()
	saved, err := j.runner.st.SaveJobProgress(ctx, j.Scope, j.ID, j.runner.owner, p, j.runner.cfg.Lease)
	if err != nil {
		return fmt.Errorf("job %s: save progress: %w", j.ID, err)
	}
	if saved.CancelRequested {
		return ErrCancelled
	}
	return nil
}

// snapshot is the progress for a heartbeat, taken under the lock Save
// holds while it copies, so the heartbeat never reads a half-made slice.
func (j *Job) snapshot() store.JobProgress {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.progress
	p.Errors = append([]store.JobError(nil), p.Errors...)
	return p
}

// RunnerConfig configures a Runner. Store and at least one Kind are required.
type RunnerConfig struct {
	Store  store.JobStore
	Kinds  []Kind
	Logger *slog.Logger
	// Concurrency is how many jobs run at once; default 2.
	Concurrency int
	// Lease is how long a claimed job stays this runner's without a save;
	// a crashed runner's job is claimed again after it. Default 1 minute.
	Lease time.Duration
	// Poll is how often an idle runner looks for jobs (Wake says sooner
	// that one was created here); default 2 s.
	Poll time.Duration
}

// Runner claims jobs from the store and runs them with their kinds, at most
// Concurrency at once. It ends on Stop: running jobs are interrupted at
// once and their leases released, so they resume from their checkpoints on
// the next start (here or on another daemon).
type Runner struct {
	cfg    RunnerConfig
	st     store.JobStore
	kinds  map[string]Kind
	owner  string
	logger *slog.Logger
	wake   chan struct{}

	mu      sync.Mutex
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
}

// NewRunner checks cfg and fills its defaults.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Store == nil || len(cfg.Kinds) == 0 {
		return nil, errors.New("ingest: runner: a store and a kind are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 2
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	kinds := map[string]Kind{}
	for _, k := range cfg.Kinds {
		kinds[k.Name()] = k
	}
	return &Runner{cfg: cfg, st: cfg.Store, kinds: kinds, owner: "runner_" + strings.ReplaceAll(uuid.NewString(), "-", ""),
		logger: cfg.Logger, wake: make(chan struct{}, cfg.Concurrency)}, nil
}

// HasKind reports whether the runner runs jobs of kind.
func (r *Runner) HasKind(kind string) bool { return r.kinds[kind] != nil }

// Wake tells the runner a job was queued, so an idle worker claims it now
// rather than at its next poll.
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Start starts the workers; it returns at once.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return errors.New("ingest: runner: started twice")
	}
	r.started = true
	ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for range r.cfg.Concurrency {
		r.wg.Go(func() { r.work(ctx) })
	}
	return nil
}

// Stop interrupts running jobs, releases their leases and waits for the
// workers, or for ctx. Safe twice and without Start.
func (r *Runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	cancel := r.cancel
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ingest: runner: stop: %w", ctx.Err())
	}
}

func (r *Runner) work(ctx context.Context) {
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	for ctx.Err() == nil {
		j, err := r.st.ClaimJob(ctx, r.owner, r.cfg.Lease)
		switch {
		case err == nil:
			r.run(ctx, j)
			continue
		case errors.Is(err, store.ErrNoWork), ctx.Err() != nil:
		default:
			r.logger.Warn("ingest: claim job", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-t.C:
		}
	}
}

// run runs one claimed job to its end, or to the runner's stop.
func (r *Runner) run(ctx context.Context, sj store.Job) {
	log := r.logger.With("job_id", sj.ID, "kind", sj.Kind, "attempt", sj.Attempts)
	j := &Job{Job: sj, runner: r, progress: sj.JobProgress}
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The heartbeat renews the lease while an item takes long (a big PDF,
	// a slow embedder), and turns a cancel request into cancelling jctx at
	// once rather than at the next item.
	var heartbeat sync.WaitGroup
	cancelSeen := make(chan struct{}) // closed when the heartbeat saw a cancel request
	heartbeat.Go(func() {
		t := time.NewTicker(r.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-t.C:
			}
			saved, err := r.st.SaveJobProgress(jctx, j.Scope, j.ID, r.owner, j.snapshot(), r.cfg.Lease)
			switch {
			case errors.Is(err, store.ErrConflict):
				log.Warn("ingest: lost the job's lease; stopping it", "err", err)
				cancel()
				return
			case err != nil:
				log.Warn("ingest: heartbeat", "err", err)
			case saved.CancelRequested:
				close(cancelSeen)
				cancel()
				return
			}
		}
	})

	var err error
	if k := r.kinds[sj.Kind]; k == nil {
		err = fmt.Errorf("no runner for jobs of kind %q", sj.Kind)
	} else if sj.CancelRequested {
		err = ErrCancelled
	} else {
		log.Info("ingest: job started", "resumed", sj.Attempts > 1)
		err = k.Run(jctx, j)
	}
	cancel()
	heartbeat.Wait()
	select {
	case <-cancelSeen:
		err = ErrCancelled
	default:
	}

	// Ending writes use a context of their own: at stop, ctx is done.
	endCtx, endCancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer endCancel()
	p := j.snapshot()
	switch {
	case errors.Is(err, ErrCancelled):
		_, ferr := r.st.FinishJob(endCtx, j.Scope, j.ID, r.owner, store.JobCancelled, p, "")
		log.Info("ingest: job cancelled", "done", p.Done, "err", ferr)
	case ctx.Err() != nil:
		// The runner stops: the job resumes from its checkpoint later.
		if rerr := r.st.ReleaseJob(endCtx, j.Scope, j.ID, r.owner); rerr != nil {
			log.Warn("ingest: release job", "err", rerr)
		}
		log.Info("ingest: job interrupted by shutdown", "done", p.Done)
	case errors.Is(err, store.ErrConflict):
		log.Warn("ingest: job taken over by another runner", "err", err)
	case err != nil:
		_, ferr := r.st.FinishJob(endCtx, j.Scope, j.ID, r.owner, store.JobFailed, p, err.Error())
		log.Warn("ingest: job failed", "err", err, "finish_err", ferr)
	default:
		_, ferr := r.st.FinishJob(endCtx, j.Scope, j.ID, r.owner, store.JobCompleted, p, "")
		log.Info("ingest: job completed", "counts", p.Counts, "err", ferr)
	}
}

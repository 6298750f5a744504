package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Job statuses. A job is queued until a runner claims it, running while one
// holds its lease, and ends completed, failed or cancelled.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobCompleted = "completed"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// JobEnded reports whether status is a final one.
func JobEnded(status string) bool {
	return status == JobCompleted || status == JobFailed || status == JobCancelled
}

// MaxJobErrors is how many per-item errors a job keeps; the count of failed
// items goes on past it (Counts.Failed), so a batch of a million bad files
// does not make a row of a million messages.
const MaxJobErrors = 100

// JobCounts is what a job found and did to the items of its source.
type JobCounts struct {
	Found     int `json:"found"`
	New       int `json:"new"`
	Changed   int `json:"changed"`
	Unchanged int `json:"unchanged"`
	Deleted   int `json:"deleted"`
	Failed    int `json:"failed"`
}

// JobError is the failure of one item (a file, a document); the job goes on.
type JobError struct {
	Item    string `json:"item"`
	Message string `json:"message"`
}

// JobProgress is the state a runner saves as a job goes: how far it is, what
// it counted, and its checkpoint (opaque to the store: what the job's kind
// needs to resume without redoing finished items).
type JobProgress struct {
	Done       int             `json:"done"`
	Total      int             `json:"total"`
	Counts     JobCounts       `json:"counts"`
	Errors     []JobError      `json:"errors"`
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
}

// Job is one durable ingestion: a kind (local_files, later feishu_sync,
// mineru), its parameters, its status and progress.
type Job struct {
	Scope  Scope           `json:"-"`
	ID     string          `json:"id"`
	Kind   string          `json:"kind"`
	Status string          `json:"status"`
	Params json.RawMessage `json:"params"`
	JobProgress
	// Error is why a failed job failed as a whole (not an item's error).
	Error           string     `json:"error,omitempty"`
	CancelRequested bool       `json:"cancel_requested"`
	Attempts        int        `json:"attempts"` // how often a runner claimed it
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
}

// JobInput is one input a job was created with (an uploaded file), kept in
// the store until the job ends so a job resumed after a crash still has it.
type JobInput struct {
	Seq  int
	Name string
	Data []byte
}

// NewJob is a job to create, queued.
type NewJob struct {
	Scope  Scope
	ID     string
	Kind   string
	Params json.RawMessage
	Total  int
	Inputs []JobInput
}

// JobStore keeps ingestion jobs. A runner claims a job with a lease it
// renews by saving progress; a runner that died stops renewing, and once the
// lease has run out another claims the job and resumes it from its
// checkpoint. Every write of a claimed job names its owner, so a runner that
// lost its lease (paused too long) cannot overwrite its successor's progress.
type JobStore interface {
	CreateJob(ctx context.Context, j NewJob) (Job, error)
	GetJob(ctx context.Context, scope Scope, id string) (Job, error)
	// ListJobs returns a page of the scope's jobs, newest first, and how many there are.
	ListJobs(ctx context.Context, scope Scope, page Page) ([]Job, int, error)
	// JobInput reads one input of a job; ErrNotFound when it has none of that seq.
	JobInput(ctx context.Context, scope Scope, jobID string, seq int) (JobInput, error)
	// ClaimJob gives owner, for lease, the oldest queued job of any scope or
	// else a running job whose lease has run out (its runner died): running,
	// Attempts one more. ErrNoWork when there is none.
	ClaimJob(ctx context.Context, owner string, lease time.Duration) (Job, error)
	// SaveJobProgress stores p for a job owner holds and renews its lease;
	// the job returned says whether a cancel was requested. ErrConflict when
	// owner does not hold the job (it ended, or its lease went to another).
	SaveJobProgress(ctx context.Context, scope Scope, id, owner string, p JobProgress, lease time.Duration) (Job, error)
	// FinishJob ends a job owner holds with a final status, progress and
	// error (for failed), and deletes its inputs. ErrConflict as SaveJobProgress.
	FinishJob(ctx context.Context, scope Scope, id, owner, status string, p JobProgress, errMsg string) (Job, error)
	// ReleaseJob gives up owner's lease (at shutdown), so a runner can claim
	// the job again at once; nothing when owner does not hold it.
	ReleaseJob(ctx context.Context, scope Scope, id, owner string) error
	// CancelJob cancels a queued job at once (its inputs deleted) and flags a
	// running one (CancelRequested; its runner stops at the next item).
	// ErrConflict when the job has ended.
	CancelJob(ctx context.Context, scope Scope, id string) (Job, error)
}

// ErrJobEnded: the job has already ended, so it cannot be cancelled.
var ErrJobEnded = fmt.Errorf("the job has already ended: %w", ErrConflict)

// ErrJobNotHeld: the runner does not hold the job's lease (any more).
var ErrJobNotHeld = fmt.Errorf("the job is not held by this runner: %w", ErrConflict)

// CheckNewJob refuses a job the stores cannot keep.
func CheckNewJob(j NewJob) error {
	if err := CheckScope(j.Scope); err != nil {
		return err
	}
	if j.ID == "" || j.Kind == "" {
		return errors.New("a job needs an id and a kind")
	}
	if j.Total < 0 {
		return errors.New("a job's total cannot be negative")
	}
	return nil
}

// CheckJobFinish refuses a final status that is not one.
func CheckJobFinish(status string) error {
	if !JobEnded(status) {
		return fmt.Errorf("%q is not a final job status", status)
	}
	return nil
}

// JobProgressJSON is the stored form of p's counts and errors (errors capped
// at MaxJobErrors) and checkpoint ("null" when none).
func JobProgressJSON(p JobProgress) (counts, errs, checkpoint string) {
	c, _ := json.Marshal(p.Counts)
	e := p.Errors
	if len(e) > MaxJobErrors {
		e = e[:MaxJobErrors]
	}
	if e == nil {
		e = []JobError{}
	}
	eb, _ := json.Marshal(e)
	cp := "null"
	if len(p.Checkpoint) > 0 {
		cp = string(p.Checkpoint)
	}
	return string(c), string(eb), cp
}

// DecodeJobProgress fills j's counts, errors and checkpoint from their stored forms.
func DecodeJobProgress(j *Job, counts, errs, checkpoint, params string) error {
	if err := json.Unmarshal([]byte(counts), &j.Counts); err != nil {
		return fmt.Errorf("job counts: %w", err)
	}
	if err := json.Unmarshal([]byte(errs), &j.Errors); err != nil {
		return fmt.Errorf("job errors: %w", err)
	}
	if j.Errors == nil {
		j.Errors = []JobError{}
	}
	if checkpoint != "" && checkpoint != "null" {
		j.Checkpoint = json.RawMessage(checkpoint)
	}
	if params == "" {
		params = "{}"
	}
	j.Params = json.RawMessage(params)
	return nil
}

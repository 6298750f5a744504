package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

var _ store.JobStore = (*Store)(nil)

const jobColumns = `org_id, user_id, project_id, job_id, kind, status, params, done, total, counts, errors, checkpoint,
	error, cancel_requested, attempts, created_at, updated_at, started_at, finished_at`

func scanJob(row pgx.Row) (store.Job, error) {
	var (
		j                                    store.Job
		params, counts, errs, checkpointJSON string
	)
	if err := row.Scan(&j.Scope.OrgID, &j.Scope.UserID, &j.Scope.ProjectID, &j.ID, &j.Kind, &j.Status, &params,
		&j.Done, &j.Total, &counts, &errs, &checkpointJSON, &j.Error, &j.CancelRequested, &j.Attempts,
		&j.CreatedAt, &j.UpdatedAt, &j.StartedAt, &j.FinishedAt); err != nil {
		return store.Job{}, err
	}
	j.CreatedAt, j.UpdatedAt = utc(j.CreatedAt), utc(j.UpdatedAt)
	j.StartedAt, j.FinishedAt = utcPtr(j.StartedAt), utcPtr(j.FinishedAt)
	if err := store.DecodeJobProgress(&j, counts, errs, checkpointJSON, params); err != nil {
		return store.Job{}, err
	}
	return j, nil
}

// CreateJob stores a queued job and its inputs in one transaction.
func (s *Store) CreateJob(ctx context.Context, nj store.NewJob) (store.Job, error) {
	if err := store.CheckNewJob(nj); err != nil {
		return store.Job{}, fmt.Errorf("postgres: create job: %w", err)
	}
	params := string(nj.Params)
	if params == "" {
		params = "{}"
	}
	var j store.Job
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		now := s.now()
		var err error
		j, err = scanJob(tx.QueryRow(ctx, `INSERT INTO jobs (org_id, user_id, project_id, job_id, kind, status, params, total, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $8) RETURNING `+jobColumns,
			nj.Scope.OrgID, nj.Scope.UserID, nj.Scope.ProjectID, nj.ID, nj.Kind, params, nj.Total, now))
		if err != nil {
			return err
		}
		for _, in := range nj.Inputs {
			if in.Data == nil {
				in.Data = []byte{} // the column is NOT NULL; an empty file is still a file
			}
			if _, err := tx.Exec(ctx, `INSERT INTO job_inputs (org_id, user_id, project_id, job_id, seq, name, data)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, nj.Scope.OrgID, nj.Scope.UserID, nj.Scope.ProjectID, nj.ID, in.Seq, in.Name, in.Data); err != nil {
				return err
			}
		}
		return nil
	})
	return j, s.fail(ctx, "create job", err)
}

// GetJob returns one of the scope's jobs.
func (s *Store) GetJob(ctx context.Context, scope store.Scope, id string) (store.Job, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND job_id = $4`, scope.OrgID, scope.UserID, scope.ProjectID, id))
	return j, s.fail(ctx, "get job", err)
}

// ListJobs returns a page of the scope's jobs, newest first.
func (s *Store) ListJobs(ctx context.Context, scope store.Scope, page store.Page) ([]store.Job, int, error) {
	limit, offset := store.PageBounds(page)
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM jobs WHERE org_id = $1 AND user_id = $2 AND project_id = $3`,
		scope.OrgID, scope.UserID, scope.ProjectID).Scan(&total); err != nil {
		return nil, 0, s.fail(ctx, "list jobs", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+jobColumns+` FROM jobs WHERE org_id = $1 AND user_id = $2 AND project_id = $3
		ORDER BY created_at DESC, job_id DESC LIMIT $4 OFFSET $5`, scope.OrgID, scope.UserID, scope.ProjectID, limit, offset)
	if err != nil {
		return nil, 0, s.fail(ctx, "list jobs", err)
	}
	out, err := collectJobs(rows)
	return out, total, s.fail(ctx, "list jobs", err)
}

// collectJobs reads rows of jobColumns; never nil.
func collectJobs(rows pgx.Rows) ([]store.Job, error) {
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Job, error) { return scanJob(row) })
	if out == nil {
		out = []store.Job{}
	}
	return out, err
}

// JobInput reads one input of a job.
func (s *Store) JobInput(ctx context.Context, scope store.Scope, jobID string, seq int) (store.JobInput, error) {
	in := store.JobInput{Seq: seq}
	err := s.pool.QueryRow(ctx, `SELECT name, data FROM job_inputs
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND job_id = $4 AND seq = $5`,
		scope.OrgID, scope.UserID, scope.ProjectID, jobID, seq).Scan(&in.Name, &in.Data)
	return in, s.fail(ctx, "job input", err)
}

// ClaimJob claims the oldest claimable job (see store.JobStore). SKIP LOCKED
// lets runners of several daemons claim different jobs at once.
func (s *Store) ClaimJob(ctx context.Context, owner string, lease time.Duration) (store.Job, error) {
	now := s.now()
	j, err := scanJob(s.pool.QueryRow(ctx, `UPDATE jobs SET status = 'running', lease_owner = $1, lease_until = $2,
			attempts = attempts + 1, started_at = COALESCE(started_at, $3), updated_at = $3
		WHERE (org_id, user_id, project_id, job_id) = (
			SELECT org_id, user_id, project_id, job_id FROM jobs
			WHERE status IN ('queued', 'running') AND (status = 'queued' OR lease_until < $3)
			ORDER BY created_at, job_id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+jobColumns, owner, now.Add(lease), now))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Job{}, fmt.Errorf("postgres: claim job: %w", store.ErrNoWork)
	}
	return j, s.fail(ctx, "claim job", err)
}

// heldJob runs update on a job owner holds; ErrJobNotHeld when it does not.
func (s *Store) heldJob(ctx context.Context, op string, scope store.Scope, id, owner, set string, args ...any) (store.Job, error) {
	all := append([]any{scope.OrgID, scope.UserID, scope.ProjectID, id, owner}, args...)
	j, err := scanJob(s.pool.QueryRow(ctx, `UPDATE jobs SET `+set+`
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND job_id = $4 AND lease_owner = $5 AND status = 'running'
		RETURNING `+jobColumns, all...))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Job{}, fmt.Errorf("postgres: %s: %w", op, store.ErrJobNotHeld)
	}
	return j, s.fail(ctx, op, err)
}

// SaveJobProgress stores progress of a held job and renews its lease.
func (s *Store) SaveJobProgress(ctx context.Context, scope store.Scope, id, owner string, p store.JobProgress, lease time.Duration) (store.Job, error) {
	counts, errs, cp := store.JobProgressJSON(p)
	now := s.now()
	return s.heldJob(ctx, "save job progress", scope, id, owner,
		`done = $6, total = $7, counts = $8, errors = $9, checkpoint = $10, lease_until = $11, updated_at = $12`,
		p.Done, p.Total, counts, errs, cp, now.Add(lease), now)
}

// FinishJob ends a held job and deletes its inputs, in one transaction.
func (s *Store) FinishJob(ctx context.Context, scope store.Scope, id, owner, status string, p store.JobProgress, errMsg string) (store.Job, error) {
	if err := store.CheckJobFinish(status); err != nil {
		return store.Job{}, fmt.Errorf("postgres: finish job: %w", err)
	}
	counts, errs, cp := store.JobProgressJSON(p)
	var j store.Job
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		now := s.now()
		var err error
		j, err = scanJob(tx.QueryRow(ctx, `UPDATE jobs SET status = $6, done = $7, total = $8, counts = $9, errors = $10,
				checkpoint = $11, error = $12, lease_owner = '', lease_until = NULL, updated_at = $13, finished_at = $13
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND job_id = $4 AND lease_owner = $5 AND status = 'running'
			RETURNING `+jobColumns, scope.OrgID, scope.UserID, scope.ProjectID, id, owner,
			status, p.Done, p.Total, counts, errs, cp, errMsg, now))
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrJobNotHeld
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM job_inputs WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND job_id = $4`,
			scope.OrgID, scope.UserID, scope.ProjectID, id)
		return err
	})
	return j, s.fail(ctx, "finish job", err)
}

// ReleaseJob gives up owner's lease of a job.
func (s *Store) ReleaseJob(ctx context.Context, scope store.Scope, id, owner string) error {
	_, err := s.pool.Exec(ctx, `UPDATE jobs SET lease_owner = '', lease_until = $6
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND job_id = $4 AND lease_owner = $5 AND status = 'running'`,
		scope.OrgID, scope.UserID, scope.ProjectID, id, owner, s.now().Add(-time.Microsecond))
	return s.fail(ctx, "release job", err)
}

// CancelJob cancels a queued job or flags a running one.
func (s *Store) CancelJob(ctx context.Context, scope store.Scope, id string) (store.Job, error) {
	var j store.Job
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND job_id = $4 FOR UPDATE`, scope.OrgID, scope.UserID, scope.ProjectID, id))
		if err != nil {
			return err
		}
		now := s.now()
		switch cur.Status {
		case store.JobQueued:
			j, err = scanJob(tx.QueryRow(ctx, `UPDATE jobs SET status = 'cancelled', cancel_requested = true, updated_at = $5, finished_at = $5
				WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND job_id = $4 RETURNING `+jobColumns,
				scope.OrgID, scope.UserID, scope.ProjectID, id, now))
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `DELETE FROM job_inputs WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND job_id = $4`,
				scope.OrgID, scope.UserID, scope.ProjectID, id)
			return err
		case store.JobRunning:
			j, err = scanJob(tx.QueryRow(ctx, `UPDATE jobs SET cancel_requested = true, updated_at = $5
				WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND job_id = $4 RETURNING `+jobColumns,
				scope.OrgID, scope.UserID, scope.ProjectID, id, now))
			return err
		default:
			j = cur
			return store.ErrJobEnded
		}
	})
	return j, s.fail(ctx, "cancel job", err)
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openintern/openintern/store"
)

var _ store.JobStore = (*Store)(nil)

const jobColumns = `org_id, user_id, project_id, job_id, kind, status, params, done, total, counts, errors, checkpoint,
	error, cancel_requested, attempts, created_at, updated_at, started_at, finished_at`

func scanJob(row scanner) (store.Job, error) {
	var (
		j                                    store.Job
		params, counts, errs, checkpointJSON string
		created, updated                     int64
		started, finished                    sql.NullInt64
	)
	if err := row.Scan(&j.Scope.OrgID, &j.Scope.UserID, &j.Scope.ProjectID, &j.ID, &j.Kind, &j.Status, &params,
		&j.Done, &j.Total, &counts, &errs, &checkpointJSON, &j.Error, &j.CancelRequested, &j.Attempts,
		&created, &updated, &started, &finished); err != nil {
		return store.Job{}, err
	}
	j.CreatedAt, j.UpdatedAt = fromMicros(created), fromMicros(updated)
	j.StartedAt, j.FinishedAt = fromNullMicros(started), fromNullMicros(finished)
	if err := store.DecodeJobProgress(&j, counts, errs, checkpointJSON, params); err != nil {
		return store.Job{}, err
	}
	return j, nil
}

const jobKey = scopeCond + ` AND job_id = ?`

// CreateJob stores a queued job and its inputs in one transaction.
func (s *Store) CreateJob(ctx context.Context, nj store.NewJob) (store.Job, error) {
	if err := store.CheckNewJob(nj); err != nil {
		return store.Job{}, fmt.Errorf("sqlite: create job: %w", err)
	}
	params := string(nj.Params)
	if params == "" {
		params = "{}"
	}
	var j store.Job
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		now := micros(s.now())
		var err error
		j, err = scanJob(tx.QueryRowContext(ctx, `INSERT INTO jobs (org_id, user_id, project_id, job_id, kind, status, params, total, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?) RETURNING `+jobColumns,
			scopeArgs(nj.Scope, nj.ID, nj.Kind, params, nj.Total, now, now)...))
		if err != nil {
			return err
		}
		for _, in := range nj.Inputs {
			data := in.Data
			if data == nil {
				data = []byte{} // the column is NOT NULL; an empty file is still a file
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO job_inputs (org_id, user_id, project_id, job_id, seq, name, data)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, scopeArgs(nj.Scope, nj.ID, in.Seq, in.Name, data)...); err != nil {
				return err
			}
		}
		return nil
	})
	return j, fail("create job", err)
}

// GetJob returns one of the scope's jobs.
func (s *Store) GetJob(ctx context.Context, scope store.Scope, id string) (store.Job, error) {
	j, err := scanJob(s.r.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE `+jobKey, scopeArgs(scope, id)...))
	return j, fail("get job", err)
}

// ListJobs returns a page of the scope's jobs, newest first.
func (s *Store) ListJobs(ctx context.Context, scope store.Scope, page store.Page) ([]store.Job, int, error) {
	limit, offset := store.PageBounds(page)
	out := []store.Job{}
	var total int
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE `+scopeCond, scopeArgs(scope)...).Scan(&total); err != nil {
			return err
		}
		return queryRows(ctx, tx, `SELECT `+jobColumns+` FROM jobs WHERE `+scopeCond+`
			ORDER BY created_at DESC, job_id DESC LIMIT ? OFFSET ?`, scopeArgs(scope, limit, offset), func(rows *sql.Rows) error {
			j, err := scanJob(rows)
			if err != nil {
				return err
			}
			out = append(out, j)
			return nil
		})
	})
	if err != nil {
		return nil, 0, fail("list jobs", err)
	}
	return out, total, nil
}

// JobInput reads one input of a job.
func (s *Store) JobInput(ctx context.Context, scope store.Scope, jobID string, seq int) (store.JobInput, error) {
	in := store.JobInput{Seq: seq}
	err := s.r.QueryRowContext(ctx, `SELECT name, data FROM job_inputs WHERE `+jobKey+` AND seq = ?`,
		scopeArgs(scope, jobID, seq)...).Scan(&in.Name, &in.Data)
	return in, fail("job input", err)
}

// ClaimJob claims the oldest claimable job (see store.JobStore); the single
// writer serialises claims.
func (s *Store) ClaimJob(ctx context.Context, owner string, lease time.Duration) (store.Job, error) {
	var j store.Job
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		var err error
		j, err = scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET status = 'running', lease_owner = ?, lease_until = ?,
				attempts = attempts + 1, started_at = COALESCE(started_at, ?), updated_at = ?
			WHERE rowid = (SELECT rowid FROM jobs WHERE status IN ('queued', 'running') AND (status = 'queued' OR lease_until < ?)
				ORDER BY created_at, job_id LIMIT 1)
			RETURNING `+jobColumns, owner, micros(now.Add(lease)), micros(now), micros(now), micros(now)))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return store.Job{}, fmt.Errorf("sqlite: claim job: %w", store.ErrNoWork)
	}
	return j, fail("claim job", err)
}

// updateHeld runs an update of a job owner holds; ErrJobNotHeld when it does not.
func updateHeld(ctx context.Context, tx *sql.Tx, scope store.Scope, id, owner, set string, args ...any) (store.Job, error) {
	args = append(args, scopeArgs(scope, id, owner)...)
	j, err := scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET `+set+` WHERE `+jobKey+` AND lease_owner = ? AND status = 'running'
		RETURNING `+jobColumns, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Job{}, store.ErrJobNotHeld
	}
	return j, err
}

// SaveJobProgress stores progress of a held job and renews its lease.
func (s *Store) SaveJobProgress(ctx context.Context, scope store.Scope, id, owner string, p store.JobProgress, lease time.Duration) (store.Job, error) {
	counts, errs, cp := store.JobProgressJSON(p)
	var j store.Job
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		var err error
		j, err = updateHeld(ctx, tx, scope, id, owner, `done = ?, total = ?, counts = ?, errors = ?, checkpoint = ?, lease_until = ?, updated_at = ?`,
			p.Done, p.Total, counts, errs, cp, micros(now.Add(lease)), micros(now))
		return err
	})
	return j, fail("save job progress", err)
}

// FinishJob ends a held job and deletes its inputs, in one transaction.
func (s *Store) FinishJob(ctx context.Context, scope store.Scope, id, owner, status string, p store.JobProgress, errMsg string) (store.Job, error) {
	if err := store.CheckJobFinish(status); err != nil {
		return store.Job{}, fmt.Errorf("sqlite: finish job: %w", err)
	}
	counts, errs, cp := store.JobProgressJSON(p)
	var j store.Job
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		now := micros(s.now())
		var err error
		j, err = updateHeld(ctx, tx, scope, id, owner, `status = ?, done = ?, total = ?, counts = ?, errors = ?, checkpoint = ?, error = ?,
			lease_owner = '', lease_until = NULL, updated_at = ?, finished_at = ?`,
			status, p.Done, p.Total, counts, errs, cp, errMsg, now, now)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM job_inputs WHERE `+jobKey, scopeArgs(scope, id)...)
		return err
	})
	return j, fail("finish job", err)
}

// ReleaseJob gives up owner's lease of a job.
func (s *Store) ReleaseJob(ctx context.Context, scope store.Scope, id, owner string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_owner = '', lease_until = ? WHERE `+jobKey+` AND lease_owner = ? AND status = 'running'`,
			append([]any{micros(s.now()) - 1}, scopeArgs(scope, id, owner)...)...)
		return err
	})
	return fail("release job", err)
}

// CancelJob cancels a queued job or flags a running one.
func (s *Store) CancelJob(ctx context.Context, scope store.Scope, id string) (store.Job, error) {
	var j store.Job
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanJob(tx.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE `+jobKey, scopeArgs(scope, id)...))
		if err != nil {
			return err
		}
		now := micros(s.now())
		switch cur.Status {
		case store.JobQueued:
			j, err = scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET status = 'cancelled', cancel_requested = 1, updated_at = ?, finished_at = ?
				WHERE `+jobKey+` RETURNING `+jobColumns, append([]any{now, now}, scopeArgs(scope, id)...)...))
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `DELETE FROM job_inputs WHERE `+jobKey, scopeArgs(scope, id)...)
			return err
		case store.JobRunning:
			j, err = scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET cancel_requested = 1, updated_at = ?
				WHERE `+jobKey+` RETURNING `+jobColumns, append([]any{now}, scopeArgs(scope, id)...)...))
			return err
		default:
			j = cur
			return store.ErrJobEnded
		}
	})
	if errors.Is(err, store.ErrJobEnded) {
		return j, fmt.Errorf("sqlite: cancel job: %w", err)
	}
	return j, fail("cancel job", err)
}

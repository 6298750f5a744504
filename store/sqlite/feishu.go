package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openintern/openintern/store"
)

var _ store.FeishuStore = (*Store)(nil)

const feishuConnectorColumns = `org_id, user_id, project_id, connector_id, name, enabled, sources, last_job_id, last_queued_at,
	created_at, updated_at`

func scanFeishuConnector(row scanner) (store.FeishuConnector, error) {
	var (
		c                store.FeishuConnector
		sources          string
		created, updated int64
		queued           sql.NullInt64
	)
	if err := row.Scan(&c.Scope.OrgID, &c.Scope.UserID, &c.Scope.ProjectID, &c.ID, &c.Name, &c.Enabled, &sources,
		&c.LastJobID, &queued, &created, &updated); err != nil {
		return store.FeishuConnector{}, err
	}
	c.CreatedAt, c.UpdatedAt, c.LastQueuedAt = fromMicros(created), fromMicros(updated), fromNullMicros(queued)
	var err error
	c.Sources, err = store.DecodeFeishuSources(sources)
	return c, err
}

const feishuKey = scopeCond + ` AND connector_id = ?`

// CreateFeishuConnector stores a new connector.
func (s *Store) CreateFeishuConnector(ctx context.Context, c store.FeishuConnector) (store.FeishuConnector, error) {
	if err := store.CheckFeishuConnector(c); err != nil {
		return store.FeishuConnector{}, fmt.Errorf("sqlite: create feishu connector: %w", err)
	}
	var out store.FeishuConnector
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		now := micros(s.now())
		var err error
		out, err = scanFeishuConnector(tx.QueryRowContext(ctx, `INSERT INTO feishu_connectors
			(org_id, user_id, project_id, connector_id, name, enabled, sources, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+feishuConnectorColumns,
			scopeArgs(c.Scope, c.ID, c.Name, c.Enabled, store.EncodeFeishuSources(c.Sources), now, now)...))
		return err
	})
	return out, fail("create feishu connector", err)
}

// GetFeishuConnector returns one of the scope's connectors.
func (s *Store) GetFeishuConnector(ctx context.Context, scope store.Scope, id string) (store.FeishuConnector, error) {
	c, err := scanFeishuConnector(s.r.QueryRowContext(ctx, `SELECT `+feishuConnectorColumns+` FROM feishu_connectors WHERE `+feishuKey,
		scopeArgs(scope, id)...))
	return c, fail("get feishu connector", err)
}

// ListFeishuConnectors returns a page of the scope's connectors, oldest first.
func (s *Store) ListFeishuConnectors(ctx context.Context, scope store.Scope, page store.Page) ([]store.FeishuConnector, int, error) {
	limit, offset := store.PageBounds(page)
	out, total, err := listPage(ctx, s, `SELECT count(*) FROM feishu_connectors WHERE `+scopeCond, scopeArgs(scope),
		`SELECT `+feishuConnectorColumns+` FROM feishu_connectors WHERE `+scopeCond+` ORDER BY created_at, connector_id LIMIT ? OFFSET ?`,
		scopeArgs(scope, limit, offset), scanFeishuConnector)
	if err != nil {
		return nil, 0, fail("list feishu connectors", err)
	}
	return out, total, nil
}

// UpdateFeishuConnector applies a patch in the single writer.
func (s *Store) UpdateFeishuConnector(ctx context.Context, scope store.Scope, id string, p store.FeishuConnectorPatch) (store.FeishuConnector, error) {
	var out store.FeishuConnector
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanFeishuConnector(tx.QueryRowContext(ctx, `SELECT `+feishuConnectorColumns+` FROM feishu_connectors WHERE `+feishuKey,
			scopeArgs(scope, id)...))
		if err != nil {
			return err
		}
		next, err := store.ApplyFeishuPatch(cur, p)
		if err != nil {
			return err
		}
		out, err = scanFeishuConnector(tx.QueryRowContext(ctx, `UPDATE feishu_connectors SET name = ?, enabled = ?, sources = ?, updated_at = ?
			WHERE `+feishuKey+` RETURNING `+feishuConnectorColumns,
			append([]any{next.Name, next.Enabled, store.EncodeFeishuSources(next.Sources), micros(s.now())}, scopeArgs(scope, id)...)...))
		return err
	})
	return out, fail("update feishu connector", err)
}

const feishuJobsFrom = ` FROM feishu_connector_jobs l
	JOIN jobs j ON j.org_id = l.org_id AND j.user_id = l.user_id AND j.project_id = l.project_id AND j.job_id = l.job_id
	WHERE l.org_id = ? AND l.user_id = ? AND l.project_id = ? AND l.connector_id = ?`

// QueueFeishuSync queues a sync unless one is active (see store.FeishuStore);
// the single writer serialises the decision.
func (s *Store) QueueFeishuSync(ctx context.Context, scope store.Scope, connectorID string, nj store.NewJob, minInterval time.Duration) (store.Job, error) {
	if err := store.CheckNewJob(nj); err != nil {
		return store.Job{}, fmt.Errorf("sqlite: queue feishu sync: %w", err)
	}
	if nj.Scope != scope {
		return store.Job{}, errors.New("sqlite: queue feishu sync: the job is not of the connector's scope")
	}
	params := string(nj.Params)
	if params == "" {
		params = "{}"
	}
	var j store.Job
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		c, err := scanFeishuConnector(tx.QueryRowContext(ctx, `SELECT `+feishuConnectorColumns+` FROM feishu_connectors WHERE `+feishuKey,
			scopeArgs(scope, connectorID)...))
		if err != nil {
			return err
		}
		active, err := scanJob(tx.QueryRowContext(ctx, `SELECT `+store.PrefixColumns("j.", jobColumns)+feishuJobsFrom+`
			AND j.status IN ('queued', 'running') ORDER BY j.created_at LIMIT 1`, scopeArgs(scope, connectorID)...))
		switch {
		case err == nil:
			j = active
			return store.ErrSyncActive
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		now := s.now()
		if !store.FeishuSyncDue(c, now, minInterval) {
			return store.ErrNotDue
		}
		j, err = scanJob(tx.QueryRowContext(ctx, `INSERT INTO jobs (org_id, user_id, project_id, job_id, kind, status, params, total, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?) RETURNING `+jobColumns,
			scopeArgs(scope, nj.ID, nj.Kind, params, nj.Total, micros(now), micros(now))...))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO feishu_connector_jobs (org_id, user_id, project_id, connector_id, job_id, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, scopeArgs(scope, connectorID, nj.ID, micros(now))...); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE feishu_connectors SET last_job_id = ?, last_queued_at = ? WHERE `+feishuKey,
			append([]any{nj.ID, micros(now)}, scopeArgs(scope, connectorID)...)...)
		return err
	})
	if errors.Is(err, store.ErrNotDue) {
		return store.Job{}, err
	}
	return j, fail("queue feishu sync", err)
}

// ListDueFeishuConnectors lists enabled connectors not queued since before.
func (s *Store) ListDueFeishuConnectors(ctx context.Context, before time.Time, limit int) ([]store.FeishuConnector, error) {
	if limit <= 0 {
		limit = 100
	}
	out := []store.FeishuConnector{}
	err := queryRows(ctx, s.r, `SELECT `+feishuConnectorColumns+` FROM feishu_connectors
		WHERE enabled AND (last_queued_at IS NULL OR last_queued_at < ?)
		ORDER BY last_queued_at NULLS FIRST, org_id, user_id, project_id, connector_id LIMIT ?`,
		[]any{micros(before), limit}, func(rows *sql.Rows) error {
			c, err := scanFeishuConnector(rows)
			out = append(out, c)
			return err
		})
	return out, fail("list due feishu connectors", err)
}

// ListFeishuConnectorJobs returns a page of the connector's jobs, newest first.
func (s *Store) ListFeishuConnectorJobs(ctx context.Context, scope store.Scope, connectorID string, page store.Page) ([]store.Job, int, error) {
	limit, offset := store.PageBounds(page)
	out, total, err := listPage(ctx, s, `SELECT count(*)`+feishuJobsFrom, scopeArgs(scope, connectorID),
		`SELECT `+store.PrefixColumns("j.", jobColumns)+feishuJobsFrom+` ORDER BY j.created_at DESC, j.job_id DESC LIMIT ? OFFSET ?`,
		scopeArgs(scope, connectorID, limit, offset), scanJob)
	if err != nil {
		return nil, 0, fail("list feishu connector jobs", err)
	}
	return out, total, nil
}

const feishuDocColumns = `connector_id, token, obj_type, title, url, version, content_hash, sections, job_id, outcome, deleted, updated_at`

// ListFeishuDocs returns the connector's documents by token.
func (s *Store) ListFeishuDocs(ctx context.Context, scope store.Scope, connectorID string) ([]store.FeishuDoc, error) {
	out := []store.FeishuDoc{}
	err := queryRows(ctx, s.r, `SELECT `+feishuDocColumns+` FROM feishu_docs WHERE `+feishuKey+` ORDER BY token`,
		scopeArgs(scope, connectorID), func(rows *sql.Rows) error {
			var (
				d       store.FeishuDoc
				updated int64
			)
			if err := rows.Scan(&d.ConnectorID, &d.Token, &d.ObjType, &d.Title, &d.URL, &d.Version, &d.ContentHash, &d.Sections,
				&d.JobID, &d.Outcome, &d.Deleted, &updated); err != nil {
				return err
			}
			d.UpdatedAt = fromMicros(updated)
			out = append(out, d)
			return nil
		})
	if err != nil {
		return nil, fail("list feishu docs", err)
	}
	return out, nil
}

// PutFeishuDoc inserts or replaces one document's record.
func (s *Store) PutFeishuDoc(ctx context.Context, scope store.Scope, d store.FeishuDoc) error {
	if err := store.CheckScope(scope); err != nil || d.ConnectorID == "" || d.Token == "" {
		return fmt.Errorf("sqlite: put feishu doc: a scope, a connector and a token are required")
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO feishu_docs (org_id, user_id, project_id, `+feishuDocColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (org_id, user_id, project_id, connector_id, token) DO UPDATE SET obj_type = excluded.obj_type,
				title = excluded.title, url = excluded.url, version = excluded.version, content_hash = excluded.content_hash,
				sections = excluded.sections, job_id = excluded.job_id, outcome = excluded.outcome, deleted = excluded.deleted,
				updated_at = excluded.updated_at`,
			scopeArgs(scope, d.ConnectorID, d.Token, d.ObjType, d.Title, d.URL, d.Version, d.ContentHash,
				d.Sections, d.JobID, d.Outcome, d.Deleted, micros(s.now()))...)
		return err
	})
	return fail("put feishu doc", err)
}

// PurgeFeishuTombstones deletes tombstones of jobs other than keepJob.
func (s *Store) PurgeFeishuTombstones(ctx context.Context, scope store.Scope, connectorID, keepJob string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM feishu_docs WHERE `+feishuKey+` AND deleted AND job_id <> ?`,
			scopeArgs(scope, connectorID, keepJob)...)
		return err
	})
	return fail("purge feishu tombstones", err)
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

var _ store.FeishuStore = (*Store)(nil)

const feishuConnectorColumns = `org_id, user_id, project_id, connector_id, name, enabled, sources, last_job_id, last_queued_at,
	created_at, updated_at`

func scanFeishuConnector(row pgx.Row) (store.FeishuConnector, error) {
	var (
		c       store.FeishuConnector
		sources string
	)
	if err := row.Scan(&c.Scope.OrgID, &c.Scope.UserID, &c.Scope.ProjectID, &c.ID, &c.Name, &c.Enabled, &sources,
		&c.LastJobID, &c.LastQueuedAt, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return store.FeishuConnector{}, err
	}
	c.CreatedAt, c.UpdatedAt, c.LastQueuedAt = utc(c.CreatedAt), utc(c.UpdatedAt), utcPtr(c.LastQueuedAt)
	var err error
	c.Sources, err = store.DecodeFeishuSources(sources)
	return c, err
}

const feishuKey = `org_id = $1 AND user_id = $2 AND project_id = $3 AND connector_id = $4`

// CreateFeishuConnector stores a new connector.
func (s *Store) CreateFeishuConnector(ctx context.Context, c store.FeishuConnector) (store.FeishuConnector, error) {
	if err := store.CheckFeishuConnector(c); err != nil {
		return store.FeishuConnector{}, fmt.Errorf("postgres: create feishu connector: %w", err)
	}
	now := s.now()
	out, err := scanFeishuConnector(s.pool.QueryRow(ctx, `INSERT INTO feishu_connectors
		(org_id, user_id, project_id, connector_id, name, enabled, sources, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING `+feishuConnectorColumns,
		c.Scope.OrgID, c.Scope.UserID, c.Scope.ProjectID, c.ID, c.Name, c.Enabled, store.EncodeFeishuSources(c.Sources), now))
	return out, s.fail(ctx, "create feishu connector", err)
}

// GetFeishuConnector returns one of the scope's connectors.
func (s *Store) GetFeishuConnector(ctx context.Context, scope store.Scope, id string) (store.FeishuConnector, error) {
	c, err := scanFeishuConnector(s.pool.QueryRow(ctx, `SELECT `+feishuConnectorColumns+` FROM feishu_connectors WHERE `+feishuKey,
		scope.OrgID, scope.UserID, scope.ProjectID, id))
	return c, s.fail(ctx, "get feishu connector", err)
}

// ListFeishuConnectors returns a page of the scope's connectors, oldest first.
func (s *Store) ListFeishuConnectors(ctx context.Context, scope store.Scope, page store.Page) ([]store.FeishuConnector, int, error) {
	limit, offset := store.PageBounds(page)
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM feishu_connectors WHERE org_id = $1 AND user_id = $2 AND project_id = $3`,
		scope.OrgID, scope.UserID, scope.ProjectID).Scan(&total); err != nil {
		return nil, 0, s.fail(ctx, "list feishu connectors", err)
	}
	out, err := s.feishuConnectors(ctx, `SELECT `+feishuConnectorColumns+` FROM feishu_connectors
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 ORDER BY created_at, connector_id LIMIT $4 OFFSET $5`,
		scope.OrgID, scope.UserID, scope.ProjectID, limit, offset)
	return out, total, s.fail(ctx, "list feishu connectors", err)
}

func (s *Store) feishuConnectors(ctx context.Context, q string, args ...any) ([]store.FeishuConnector, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.FeishuConnector{}
	for rows.Next() {
		c, err := scanFeishuConnector(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// UpdateFeishuConnector applies a patch under the row's lock.
func (s *Store) UpdateFeishuConnector(ctx context.Context, scope store.Scope, id string, p store.FeishuConnectorPatch) (store.FeishuConnector, error) {
	var out store.FeishuConnector
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := scanFeishuConnector(tx.QueryRow(ctx, `SELECT `+feishuConnectorColumns+` FROM feishu_connectors WHERE `+feishuKey+` FOR UPDATE`,
			scope.OrgID, scope.UserID, scope.ProjectID, id))
		if err != nil {
			return err
		}
		next, err := store.ApplyFeishuPatch(cur, p)
		if err != nil {
			return err
		}
		out, err = scanFeishuConnector(tx.QueryRow(ctx, `UPDATE feishu_connectors SET name = $5, enabled = $6, sources = $7, updated_at = $8
			WHERE `+feishuKey+` RETURNING `+feishuConnectorColumns,
			scope.OrgID, scope.UserID, scope.ProjectID, id, next.Name, next.Enabled, store.EncodeFeishuSources(next.Sources), s.now()))
		return err
	})
	return out, s.fail(ctx, "update feishu connector", err)
}

// QueueFeishuSync queues a sync unless one is active (see store.FeishuStore).
// The connector's row lock serialises daemons deciding for the same connector.
func (s *Store) QueueFeishuSync(ctx context.Context, scope store.Scope, connectorID string, nj store.NewJob, minInterval time.Duration) (store.Job, error) {
	if err := store.CheckNewJob(nj); err != nil {
		return store.Job{}, fmt.Errorf("postgres: queue feishu sync: %w", err)
	}
	if nj.Scope != scope {
		return store.Job{}, errors.New("postgres: queue feishu sync: the job is not of the connector's scope")
	}
	params := string(nj.Params)
	if params == "" {
		params = "{}"
	}
	var j store.Job
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		c, err := scanFeishuConnector(tx.QueryRow(ctx, `SELECT `+feishuConnectorColumns+` FROM feishu_connectors WHERE `+feishuKey+` FOR UPDATE`,
			scope.OrgID, scope.UserID, scope.ProjectID, connectorID))
		if err != nil {
			return err
		}
		active, err := scanJob(tx.QueryRow(ctx, `SELECT `+store.PrefixColumns("j.", jobColumns)+` FROM feishu_connector_jobs l
			JOIN jobs j ON j.org_id = l.org_id AND j.user_id = l.user_id AND j.project_id = l.project_id AND j.job_id = l.job_id
			WHERE l.org_id = $1 AND l.user_id = $2 AND l.project_id = $3 AND l.connector_id = $4 AND j.status IN ('queued', 'running')
			ORDER BY j.created_at LIMIT 1`, scope.OrgID, scope.UserID, scope.ProjectID, connectorID))
		switch {
		case err == nil:
			j = active
			return store.ErrSyncActive
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		now := s.now()
		if !store.FeishuSyncDue(c, now, minInterval) {
			return store.ErrNotDue
		}
		j, err = scanJob(tx.QueryRow(ctx, `INSERT INTO jobs (org_id, user_id, project_id, job_id, kind, status, params, total, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $8) RETURNING `+jobColumns,
			scope.OrgID, scope.UserID, scope.ProjectID, nj.ID, nj.Kind, params, nj.Total, now))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO feishu_connector_jobs (org_id, user_id, project_id, connector_id, job_id, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, scope.OrgID, scope.UserID, scope.ProjectID, connectorID, nj.ID, now); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE feishu_connectors SET last_job_id = $5, last_queued_at = $6 WHERE `+feishuKey,
			scope.OrgID, scope.UserID, scope.ProjectID, connectorID, nj.ID, now)
		return err
	})
	if errors.Is(err, store.ErrNotDue) {
		return store.Job{}, err
	}
	return j, s.fail(ctx, "queue feishu sync", err)
}

// ListDueFeishuConnectors lists enabled connectors not queued since before.
func (s *Store) ListDueFeishuConnectors(ctx context.Context, before time.Time, limit int) ([]store.FeishuConnector, error) {
	if limit <= 0 {
		limit = 100
	}
	out, err := s.feishuConnectors(ctx, `SELECT `+feishuConnectorColumns+` FROM feishu_connectors
		WHERE enabled AND (last_queued_at IS NULL OR last_queued_at < $1)
		ORDER BY last_queued_at NULLS FIRST, org_id, user_id, project_id, connector_id LIMIT $2`, before, limit)
	return out, s.fail(ctx, "list due feishu connectors", err)
}

// ListFeishuConnectorJobs returns a page of the connector's jobs, newest first.
func (s *Store) ListFeishuConnectorJobs(ctx context.Context, scope store.Scope, connectorID string, page store.Page) ([]store.Job, int, error) {
	limit, offset := store.PageBounds(page)
	const from = ` FROM feishu_connector_jobs l
		JOIN jobs j ON j.org_id = l.org_id AND j.user_id = l.user_id AND j.project_id = l.project_id AND j.job_id = l.job_id
		WHERE l.org_id = $1 AND l.user_id = $2 AND l.project_id = $3 AND l.connector_id = $4`
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*)`+from, scope.OrgID, scope.UserID, scope.ProjectID, connectorID).Scan(&total); err != nil {
		return nil, 0, s.fail(ctx, "list feishu connector jobs", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+store.PrefixColumns("j.", jobColumns)+from+` ORDER BY j.created_at DESC, j.job_id DESC LIMIT $5 OFFSET $6`,
		scope.OrgID, scope.UserID, scope.ProjectID, connectorID, limit, offset)
	if err != nil {
		return nil, 0, s.fail(ctx, "list feishu connector jobs", err)
	}
	out, err := collectJobs(rows)
	return out, total, s.fail(ctx, "list feishu connector jobs", err)
}

const feishuDocColumns = `connector_id, token, obj_type, title, url, version, content_hash, sections, job_id, outcome, deleted, updated_at`

// ListFeishuDocs returns the connector's documents by token.
func (s *Store) ListFeishuDocs(ctx context.Context, scope store.Scope, connectorID string) ([]store.FeishuDoc, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+feishuDocColumns+` FROM feishu_docs WHERE `+feishuKey+` ORDER BY token`,
		scope.OrgID, scope.UserID, scope.ProjectID, connectorID)
	if err != nil {
		return nil, s.fail(ctx, "list feishu docs", err)
	}
	defer rows.Close()
	out := []store.FeishuDoc{}
	for rows.Next() {
		var d store.FeishuDoc
		if err := rows.Scan(&d.ConnectorID, &d.Token, &d.ObjType, &d.Title, &d.URL, &d.Version, &d.ContentHash, &d.Sections,
			&d.JobID, &d.Outcome, &d.Deleted, &d.UpdatedAt); err != nil {
			return nil, s.fail(ctx, "list feishu docs", err)
		}
		d.UpdatedAt = utc(d.UpdatedAt)
		out = append(out, d)
	}
	return out, s.fail(ctx, "list feishu docs", rows.Err())
}

// PutFeishuDoc inserts or replaces one document's record.
func (s *Store) PutFeishuDoc(ctx context.Context, scope store.Scope, d store.FeishuDoc) error {
	if err := store.CheckScope(scope); err != nil || d.ConnectorID == "" || d.Token == "" {
		return fmt.Errorf("postgres: put feishu doc: a scope, a connector and a token are required")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO feishu_docs (org_id, user_id, project_id, `+feishuDocColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (org_id, user_id, project_id, connector_id, token) DO UPDATE SET obj_type = EXCLUDED.obj_type,
			title = EXCLUDED.title, url = EXCLUDED.url, version = EXCLUDED.version, content_hash = EXCLUDED.content_hash,
			sections = EXCLUDED.sections, job_id = EXCLUDED.job_id, outcome = EXCLUDED.outcome, deleted = EXCLUDED.deleted,
			updated_at = EXCLUDED.updated_at`,
		scope.OrgID, scope.UserID, scope.ProjectID, d.ConnectorID, d.Token, d.ObjType, d.Title, d.URL, d.Version, d.ContentHash,
		d.Sections, d.JobID, d.Outcome, d.Deleted, s.now())
	return s.fail(ctx, "put feishu doc", err)
}

// PurgeFeishuTombstones deletes tombstones of jobs other than keepJob.
func (s *Store) PurgeFeishuTombstones(ctx context.Context, scope store.Scope, connectorID, keepJob string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM feishu_docs WHERE `+feishuKey+` AND deleted AND job_id <> $5`,
		scope.OrgID, scope.UserID, scope.ProjectID, connectorID, keepJob)
	return s.fail(ctx, "purge feishu tombstones", err)
}

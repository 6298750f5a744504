package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/openintern/openintern/store"
)

// ClaimIdempotencyKey claims c.Key for c's request, or says why not (see
// store.DecideIdempotency). The insert that does nothing on a conflict,
// then the row locked FOR UPDATE, serialise concurrent claims of a key.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, c store.IdempotencyClaim) (store.IdempotencyResult, error) {
	if err := store.CheckIdempotencyClaim(c); err != nil {
		return store.IdempotencyResult{}, fmt.Errorf("postgres: claim idempotency key: %w", err)
	}
	ttl, _ := c.Bounds()
	var res store.IdempotencyResult
	// The row can vanish between the insert and the select (released or
	// deleted as expired); then the claim starts again.
	for range 3 {
		found := true
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `INSERT INTO idempotency_keys
				(org_id, user_id, project_id, idem_key, fingerprint, token, claimed_at, expires_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
				c.Scope.OrgID, c.Scope.UserID, c.Scope.ProjectID, c.Key, c.Fingerprint, c.Token, c.Now, c.Now.Add(ttl))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				res = store.IdempotencyResult{Outcome: store.IdempotencyClaimed}
				return nil
			}
			var rec store.IdempotencyRecord
			var body []byte
			err = tx.QueryRow(ctx, `SELECT fingerprint, claimed_at, expires_at, status, content_type, body
				FROM idempotency_keys WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND idem_key = $4 FOR UPDATE`,
				c.Scope.OrgID, c.Scope.UserID, c.Scope.ProjectID, c.Key).
				Scan(&rec.Fingerprint, &rec.ClaimedAt, &rec.ExpiresAt, &rec.Response.Status, &rec.Response.ContentType, &body)
			if errors.Is(err, pgx.ErrNoRows) {
				found = false
				return nil
			}
			if err != nil {
				return err
			}
			rec.Response.Body = body
			takeOver, r := store.DecideIdempotency(rec, c)
			res = r
			if !takeOver {
				return nil
			}
			_, err = tx.Exec(ctx, `UPDATE idempotency_keys SET fingerprint = $5, token = $6, claimed_at = $7, expires_at = $8,
				status = 0, content_type = '', body = NULL
				WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND idem_key = $4`,
				c.Scope.OrgID, c.Scope.UserID, c.Scope.ProjectID, c.Key, c.Fingerprint, c.Token, c.Now, c.Now.Add(ttl))
			return err
		})
		if err != nil {
			return store.IdempotencyResult{}, s.fail(ctx, "claim idempotency key", err)
		}
		if found {
			return res, nil
		}
	}
	return store.IdempotencyResult{}, fmt.Errorf("postgres: claim idempotency key: the key keeps changing: %w", store.ErrConflict)
}

// CompleteIdempotencyKey keeps resp as the answer of c's claim.
func (s *Store) CompleteIdempotencyKey(ctx context.Context, c store.IdempotencyClaim, resp store.IdempotencyResponse) error {
	body := resp.Body
	if body == nil {
		body = []byte{}
	}
	tag, err := s.pool.Exec(ctx, `UPDATE idempotency_keys SET status = $6, content_type = $7, body = $8
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND idem_key = $4 AND token = $5 AND status = 0`,
		c.Scope.OrgID, c.Scope.UserID, c.Scope.ProjectID, c.Key, c.Token, resp.Status, resp.ContentType, body)
	return s.claimDone(ctx, "complete idempotency key", tag, err)
}

// ReleaseIdempotencyKey frees c's claim without an answer, so a retry runs
// the request again.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, c store.IdempotencyClaim) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND idem_key = $4 AND token = $5 AND status = 0`,
		c.Scope.OrgID, c.Scope.UserID, c.Scope.ProjectID, c.Key, c.Token)
	return s.claimDone(ctx, "release idempotency key", tag, err)
}

func (s *Store) claimDone(ctx context.Context, op string, tag pgconn.CommandTag, err error) error {
	if err != nil {
		return s.fail(ctx, op, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrIdempotencyLost)
	}
	return nil
}

// DeleteExpiredIdempotencyKeys deletes the keys of every scope that expired
// by now and returns how many.
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, s.fail(ctx, "delete expired idempotency keys", err)
	}
	return tag.RowsAffected(), nil
}

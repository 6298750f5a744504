package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openintern/openintern/store"
)

// ClaimIdempotencyKey claims c.Key for c's request, or says why not (see
// store.DecideIdempotency). The writer's IMMEDIATE transaction serialises
// concurrent claims of a key.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, c store.IdempotencyClaim) (store.IdempotencyResult, error) {
	if err := store.CheckIdempotencyClaim(c); err != nil {
		return store.IdempotencyResult{}, fmt.Errorf("sqlite: claim idempotency key: %w", err)
	}
	ttl, _ := c.Bounds()
	var res store.IdempotencyResult
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var (
			rec              store.IdempotencyRecord
			claimed, expires int64
			status           int
			contentType      string
			body             []byte
		)
		err := tx.QueryRowContext(ctx, `SELECT fingerprint, claimed_at, expires_at, status, content_type, body
			FROM idempotency_keys WHERE `+scopeCond+` AND idem_key = ?`, scopeArgs(c.Scope, c.Key)...).
			Scan(&rec.Fingerprint, &claimed, &expires, &status, &contentType, &body)
		if errors.Is(err, sql.ErrNoRows) {
			res = store.IdempotencyResult{Outcome: store.IdempotencyClaimed}
			_, err = tx.ExecContext(ctx, `INSERT INTO idempotency_keys
				(org_id, user_id, project_id, idem_key, fingerprint, token, claimed_at, expires_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				scopeArgs(c.Scope, c.Key, c.Fingerprint, c.Token, micros(c.Now), micros(c.Now.Add(ttl)))...)
			return err
		}
		if err != nil {
			return err
		}
		rec.ClaimedAt, rec.ExpiresAt = fromMicros(claimed), fromMicros(expires)
		rec.Response = store.IdempotencyResponse{Status: status, ContentType: contentType, Body: body}
		takeOver, r := store.DecideIdempotency(rec, c)
		res = r
		if !takeOver {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE idempotency_keys SET fingerprint = ?, token = ?, claimed_at = ?, expires_at = ?,
			status = 0, content_type = '', body = NULL WHERE `+scopeCond+` AND idem_key = ?`,
			append([]any{c.Fingerprint, c.Token, micros(c.Now), micros(c.Now.Add(ttl))}, scopeArgs(c.Scope, c.Key)...)...)
		return err
	})
	if err != nil {
		return store.IdempotencyResult{}, fail("claim idempotency key", err)
	}
	return res, nil
}

// CompleteIdempotencyKey keeps resp as the answer of c's claim.
func (s *Store) CompleteIdempotencyKey(ctx context.Context, c store.IdempotencyClaim, resp store.IdempotencyResponse) error {
	body := resp.Body
	if body == nil {
		body = []byte{}
	}
	res, err := s.w.ExecContext(ctx, `UPDATE idempotency_keys SET status = ?, content_type = ?, body = ?
		WHERE `+scopeCond+` AND idem_key = ? AND token = ? AND status = 0`,
		append([]any{resp.Status, resp.ContentType, body}, scopeArgs(c.Scope, c.Key, c.Token)...)...)
	return s.claimDone("complete idempotency key", res, err)
}

// ReleaseIdempotencyKey frees c's claim without an answer, so a retry runs
// the request again.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, c store.IdempotencyClaim) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM idempotency_keys
		WHERE `+scopeCond+` AND idem_key = ? AND token = ? AND status = 0`, scopeArgs(c.Scope, c.Key, c.Token)...)
	return s.claimDone("release idempotency key", res, err)
}

func (s *Store) claimDone(op string, res sql.Result, err error) error {
	if err != nil {
		return fail(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fail(op, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: %s: %w", op, store.ErrIdempotencyLost)
	}
	return nil
}

// DeleteExpiredIdempotencyKeys deletes the keys of every scope that expired
// by now and returns how many.
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= ?`, micros(now))
	if err != nil {
		return 0, fail("delete expired idempotency keys", err)
	}
	n, err := res.RowsAffected()
	return n, fail("delete expired idempotency keys", err)
}

package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// statsTables are the tables a turn reads by key. While their statistics
// say a scope holds a row or two, the generic plans of pgx's prepared
// statements read them through whichever index starts with the scope (a
// run by its session index, say), walking all of the scope's rows: a turn
// then costs more with every turn before it until autovacuum's next ANALYZE,
// which on a database that grows from empty comes a minute or more late.
var statsTables = []string{
	"runs", "messages", "events", "checkpoints",
	"memories", "memory_chunks", "memory_terms", "memory_postings", "memory_vectors",
}

// KeepStatistics analyzes statsTables, every interval until Close, when
// they have changed by a quarter since their last ANALYZE (and at least by
// 200 rows): a table that doubles is analyzed a handful of times, a table
// in a steady state about as often as autovacuum would.
func (s *Store) KeepStatistics(interval time.Duration) {
	s.goBackground(func(ctx context.Context) {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := s.analyzeStale(ctx); err != nil && ctx.Err() == nil {
					s.logger.Warn("postgres: statistics not refreshed", "err", err)
				}
			}
		}
	})
}

// analyzeStale runs ANALYZE on the statsTables that changed enough.
func (s *Store) analyzeStale(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT relid::regclass::text FROM pg_stat_user_tables
		WHERE relid = ANY($1::text[]::regclass[])
		  AND n_mod_since_analyze >= greatest(200, n_live_tup / 4)`, statsTables)
	if err != nil {
		return s.fail(ctx, "find stale statistics", err)
	}
	stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return s.fail(ctx, "find stale statistics", err)
	}
	if len(stale) == 0 {
		return nil
	}
	started := time.Now()
	// The names come from the catalog, already quoted where needed.
	if _, err := s.pool.Exec(ctx, `ANALYZE `+strings.Join(stale, ", ")); err != nil {
		return s.fail(ctx, "analyze", err)
	}
	s.logger.Debug("postgres: statistics refreshed", "tables", stale, "took", time.Since(started))
	return nil
}

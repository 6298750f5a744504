// Package postgres is OpenIntern's production store: store.Store on
// PostgreSQL through pgx's connection pool.
//
// Open applies the embedded migrations (migrations/postgres) under a
// session-level advisory lock, each in its own transaction, recording them in
// schema_migrations, so several daemons may start at once on a fresh
// database.
//
// Every method is one transaction, and most are one statement (data-modifying
// CTEs with RETURNING, multi-row inserts from unnest) or one pipelined batch,
// so a call costs one round trip. ClaimNextRun is one batch too in the
// common cases (it serialises the claims of one agent with a
// transaction-level advisory lock keyed by the scope and agent id, and can
// read the turn's session history and core blocks with the claim); a batch
// of plain messages becomes a run in a transaction of its own. A write of a
// turn starts with one statement, openintern_write_prelude (migration 0026):
// its commit mode, its advisory locks, its fence.
//
// pgx's errors stop at this package: no rows becomes store.ErrNotFound, a
// unique violation store.ErrConflict, and other server errors are reported as
// text. Message seqs are an identity column; they increase in the order rows
// are inserted, which across concurrent transactions is not always the order
// they commit. Event ids are an identity column too, but every statement that
// stores events holds its scopes' event locks from before it draws the ids
// until it commits, so within a scope event ids become visible in increasing
// order and a reader paging by id never skips one (queryRowWithEvents). Those
// transactions commit without waiting for the WAL flush, so that the lock is
// not held through it; the durable ones then wait for the flush by a second
// transaction in the same batch.
//
// Events appended through CreateRun, CreateGroupRun, SaveStep and FinishRun
// take the scope of the call, and the run's id, agent id and group id where
// the caller left them empty.
//
// Team writes (roles, groups, members) commit synchronously; those that check
// other rows (a group's single lead, a role's members, a member's group and
// role) hold a transaction advisory lock on the scope's teams. A group run is
// a row of runs with an empty agent_id, which no claim takes and
// ListAgentsWithWork never lists; ActiveGroupRuns finds them at start-up.
//
// Lists: a store.Page with Limit 0 gets 50 rows, and no page is longer than
// 1000; ListEvents returns 100 events by default and at most 1000. An empty
// agent id in ListMessages lists the inboxes of every agent of the scope.
package postgres

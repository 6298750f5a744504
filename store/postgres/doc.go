// Package postgres is OpenIntern's production store: store.Store on
// PostgreSQL through pgx's connection pool.
//
// Open applies the embedded migrations (migrations/postgres) under a
// session-level advisory lock, each in its own transaction, recording them in
// schema_migrations, so several daemons may start at once on a fresh
// database.
//
// Every method is one transaction, and most are one statement (data-modifying
// CTEs with RETURNING, multi-row inserts from unnest), so a call costs one
// round trip; ClaimNextRun costs four (begin, one pipelined batch, one
// statement, commit) and serialises the claims of one agent with a
// transaction-level advisory lock keyed by the scope and agent id.
//
// pgx's errors stop at this package: no rows becomes store.ErrNotFound, a
// unique violation store.ErrConflict, and other server errors are reported as
// text. Event ids and message seqs are identity columns; they increase in the
// order rows are inserted, which across concurrent transactions is not
// always the order they commit.
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

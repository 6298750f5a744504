// Package sqlite is OpenIntern's embedded default store: store.Store on a
// single SQLite file through the pure-Go modernc.org/sqlite driver (no cgo).
//
// SQLite has one writer at a time. The store keeps two pools on the file: a
// write pool of exactly one connection, so concurrent writers of this process
// queue in Go instead of failing with SQLITE_BUSY, and a read pool of
// query-only connections that WAL mode lets read while the writer writes.
// Write transactions begin IMMEDIATE, taking the file's write lock at once, so
// another process writing the same file makes them wait (busy_timeout)
// rather than fail half-way. Every connection is opened with WAL,
// busy_timeout, foreign_keys and synchronous=NORMAL.
//
// Open applies the embedded migrations (migrations/sqlite), each in its own
// IMMEDIATE transaction that first checks schema_migrations, so two processes
// opening a new file at once apply each migration once.
//
// Times are stored as INTEGER microseconds since the Unix epoch (UTC), JSON as
// TEXT. Events appended through CreateRun, CreateGroupRun, SaveStep and
// FinishRun take the scope of the call, and the run's id, agent id and group
// id where the caller left them empty.
//
// Team writes check a group's single lead, a role's members and a member's
// group and role inside the writer's IMMEDIATE transaction, so no other write
// can slip between check and write. A group run is a row of runs with an
// empty agent_id, which no claim takes and ListAgentsWithWork never lists.
//
// Lists: a store.Page with Limit 0 gets 50 rows, and no page is longer than
// 1000; ListEvents returns 100 events by default and at most 1000. An empty
// agent id in ListMessages lists the inboxes of every agent of the scope.
package sqlite

// Package storetest is the conformance suite of store.Store: one Run that
// every store (store/sqlite, store/postgres) calls from its own tests with a
// factory of new, empty stores, so a behaviour the daemon relies on is tested
// once and the stores cannot drift apart.
//
// The suite covers every method: scope isolation (another scope's rows are
// never listed and are store.ErrNotFound), conflicts, the claiming rules of
// ClaimNextRun including concurrent claims for one agent, checkpoints, run
// endings and cancellation, session history, event ids, filters and limits,
// and the exact round trip of times (UTC, microseconds) and JSON payloads.
package storetest

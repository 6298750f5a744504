// Package memorytest is the conformance and quality suite every memory.Store
// passes: store/sqlite and store/postgres run it against real databases.
package memorytest

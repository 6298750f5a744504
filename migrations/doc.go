// Package migrations embeds the SQL schema of OpenIntern's stores, one
// directory per dialect (postgres/, sqlite/), as numbered files
// NNNN_name.sql. List returns them in version order; the stores apply the
// ones not yet recorded in their schema_migrations table, each in its own
// transaction. A migration, once released, is never edited: a change is a new
// file with the next number.
package migrations

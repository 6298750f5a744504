// Package ingest brings documents into archival memory as durable jobs.
//
// A job (store.Job) has a kind: local_files (files uploaded with it) today,
// connectors such as a Feishu sync or MinerU later, each a Kind the Runner
// runs. The Runner claims jobs from the store with a lease, at most
// Concurrency at once, and a job left by a crashed daemon is claimed again
// once its lease runs out and resumes from its checkpoint. Documents are
// read into citable sections (PDF pages, Markdown and HTML sections under
// their heading paths) by Extractor, and PutDocument stores them keyed by
// source and content hash, so doing an item again replaces, never duplicates.
package ingest

// Package memoryeval measures retrieval quality of the memory service on a
// BEIR-style set (corpus.jsonl, queries.jsonl, qrels.tsv): nDCG@10 and
// Recall@10 of the vector leg, the full-text leg and hybrid search.
package memoryeval

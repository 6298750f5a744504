// Package memory is OpenIntern's long-term memory: four tiers, hybrid search.
//
// Tiers: core (small named blocks per agent, always in the system prompt,
// edited by the agent through tools within a size limit), working (the run's
// checkpoint, kept by the store package, not here), episodic (what happened:
// run summaries, decisions) and archival (knowledge: documents, ingested
// files, synced pages).
//
// A Memory is split into Chunks (paragraphs and sentences, with overlap, CJK
// text included), each embedded by an Embedder and indexed for full-text
// search with the tokens of Tokenize. Full-text indexing uses Go-side tokens
// (lowercased words plus CJK character bigrams) because neither PostgreSQL's
// parsers nor SQLite's FTS5 tokenizers segment Chinese; both stores keep an
// impact-ordered inverted index of them (a posting per chunk and term,
// weighted by Impact) ranked by BM25.
//
// Service.Search runs a vector leg and a full-text leg in parallel, fuses
// them (normalized scores, or reciprocal rank fusion), keeps one hit per memory and returns
// snippets. The storage is a Store (store/postgres and store/sqlite implement
// it; both pass memorytest). Vectors carry their model name and dimension,
// and a search compares only vectors of the Service's current model.
package memory

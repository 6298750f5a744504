-- 0009_memory_postings: an impact-ordered inverted index for the full-text
-- leg, as on PostgreSQL (its 0008), in place of FTS5.
--
-- FTS5's bm25() scores every chunk that matches any kept query term, in every
-- scope (its index is global), so a query of everyday words scored tens of
-- thousands of chunks: 100 ms at 100k chunks in one scope. memory_postings
-- holds one row per (chunk, term) with the term's BM25 weight in that chunk
-- (memory.Impact), ordered by that weight within each scope and term, so a
-- search reads only the best few hundred postings of each term.
--
-- The backfill evaluates memory.Impact's expression in the same order, so a
-- delete that recomputes a posting's weight in Go finds it by its key.

CREATE TABLE memory_postings (
    org_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL DEFAULT '',
    term       TEXT    NOT NULL,
    impact     REAL    NOT NULL,
    chunk_id   INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, term, impact DESC, chunk_id DESC)
) STRICT, WITHOUT ROWID;

CREATE VIRTUAL TABLE memory_fts_instance USING fts5vocab(memory_fts, 'instance');

INSERT INTO memory_postings (org_id, user_id, project_id, term, impact, chunk_id)
SELECT c.org_id, c.user_id, c.project_id, t.term, t.tf * 2.2 / (t.tf + 1.2 * (0.25 + 0.75 * l.terms / 64.0)), c.id
FROM (SELECT doc, term, count(*) AS tf FROM memory_fts_instance GROUP BY doc, term) t
JOIN (SELECT doc, count(DISTINCT term) AS terms FROM memory_fts_instance GROUP BY doc) l ON l.doc = t.doc
JOIN memory_chunks c ON c.id = t.doc;

DROP TABLE memory_fts_instance;
DROP TABLE memory_fts;

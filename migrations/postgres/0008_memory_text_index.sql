-- 0008_memory_text_index: an impact-ordered inverted index for the full-text leg.
--
-- Ranking with the GIN index over tsv read every chunk matching a query's
-- rarest term: at 100k chunks a word in 7% of them meant 7,000 heap rows
-- and 25-75 ms, however few results were asked for. memory_postings holds one
-- row per (chunk, term) with the term's BM25 weight in that chunk, and its
-- index is ordered by that weight, so a search reads only the best few
-- hundred postings of each term with an index-only scan (memory.Store's
-- full-text leg) and a filtered search joins whole (short) posting lists.
--
-- memory_impact is the BM25 term-frequency part, k1 = 1.2, b = 0.75, with a
-- chunk's length counted in distinct terms against a fixed pivot of 64 (a
-- live pivot would change every stored weight as the scope grows). It lives
-- only here so that writes, deletes and this backfill compute the same value.

CREATE FUNCTION memory_impact(tf integer, len integer) RETURNS real
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len / 64.0)))::real $$;

CREATE TABLE memory_postings (
    org_id     TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    project_id TEXT   NOT NULL DEFAULT '',
    term       TEXT   NOT NULL,
    impact     REAL   NOT NULL,
    chunk_id   BIGINT NOT NULL
) WITH (
    -- Index-only scans need all-visible pages: vacuum after inserts early.
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_vacuum_insert_threshold = 5000
);

INSERT INTO memory_postings (org_id, user_id, project_id, term, impact, chunk_id)
SELECT c.org_id, c.user_id, c.project_id, u.lexeme, memory_impact(cardinality(u.positions), length(c.tsv)), c.id
FROM memory_chunks c, unnest(c.tsv) AS u;

CREATE INDEX memory_postings_rank_idx ON memory_postings (org_id, user_id, project_id, term, impact DESC, chunk_id DESC);

-- Nothing matches tsv any more; the column stays as the chunk's terms.
DROP INDEX IF EXISTS memory_chunks_tsv_idx;

-- The in-memory vector index of a daemon reads a scope's chunks newer than
-- the ones it holds (written by other daemons) through this index.
CREATE INDEX memory_chunks_scope_id_idx ON memory_chunks (org_id, user_id, project_id, id);

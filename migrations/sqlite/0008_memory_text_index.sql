-- 0008_memory_text_index: per-scope document frequencies for the full-text leg.
--
-- The leg picks a query's rarest terms by their document frequency. It read
-- them from memory_fts_vocab, which scans FTS5's whole vocabulary for every
-- lookup (55 ms at 100k chunks) and counts chunks of every scope.
-- memory_terms holds them per scope, as on PostgreSQL; the row with term ''
-- counts the scope's chunks. The store keeps it up to date with each write.

CREATE TABLE memory_terms (
    org_id     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL DEFAULT '',
    term       TEXT    NOT NULL,
    df         INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, term)
) WITHOUT ROWID;

CREATE VIRTUAL TABLE memory_fts_instance USING fts5vocab(memory_fts, 'instance');

INSERT INTO memory_terms (org_id, user_id, project_id, term, df)
SELECT c.org_id, c.user_id, c.project_id, i.term, count(DISTINCT i.doc)
FROM memory_fts_instance i JOIN memory_chunks c ON c.id = i.doc
GROUP BY c.org_id, c.user_id, c.project_id, i.term;

INSERT INTO memory_terms (org_id, user_id, project_id, term, df)
SELECT org_id, user_id, project_id, '', count(*) FROM memory_chunks GROUP BY org_id, user_id, project_id;

DROP TABLE memory_fts_instance;
DROP TABLE memory_fts_vocab;

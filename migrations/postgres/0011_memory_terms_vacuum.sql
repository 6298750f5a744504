-- 0011_memory_terms_vacuum: keep document-frequency lookups cheap.
--
-- Every memory written updates the memory_terms row of each of its terms, so
-- the row of a common term gets a new version per write. Until a vacuum,
-- every search that looks the term up walks its dead versions: with the
-- default trigger (20 % of the table) the lookups of a busy scope slowed
-- turn by turn (a turn's recall reads the query's terms). Vacuum after a
-- fixed number of changes instead, as 0004 does for the work queues.
ALTER TABLE memory_terms SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0, fillfactor = 70);

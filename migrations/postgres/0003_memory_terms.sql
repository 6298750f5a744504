-- 0003_memory_terms: cheaper document-frequency upkeep.
--
-- Every memory write updates its terms' rows of memory_terms (and the
-- scope's total, term ''). Leaving free space in each page lets those
-- updates be HOT (no index entry per update, no page split), and vacuuming
-- the table often keeps the dead versions of these hot rows from piling up.

ALTER TABLE memory_terms SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);

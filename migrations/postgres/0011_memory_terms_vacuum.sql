-- 0011_memory_terms_vacuum: keep document-frequency lookups cheap.
--
-- Every memory written updates the memory_terms row of each of its terms, so
-- the row of a common term gets a new version per write, and a turn's recall
-- looks up its query's terms. With the default trigger (20 % of the table)
-- dead versions pile up for as long as a busy scope keeps writing; vacuum
-- after a fixed number of changes instead, as 0004 does for the work queues,
-- and leave room on each page for updates that stay on it.
ALTER TABLE memory_terms SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0, fillfactor = 70);

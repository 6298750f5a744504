-- 0004_queue_vacuum: keep finding work cheap on the queue tables.
--
-- messages and runs are work queues: rows flip from unread to read and from
-- running to completed at a high rate, and the partial indexes that find
-- work (unread messages, the running run) keep an entry for every flipped
-- row until a vacuum. Every probe for an agent walks its dead entries, so
-- with the default trigger (20 % of the table) a busy agent slows down as
-- its history grows. Vacuum after a fixed number of changes instead, and
-- without throttling: these vacuums are small and frequent. agents takes a
-- state update per transition.

ALTER TABLE messages SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0, fillfactor = 90);
ALTER TABLE runs SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0, fillfactor = 90);
ALTER TABLE agents SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_cost_delay = 0, fillfactor = 70);

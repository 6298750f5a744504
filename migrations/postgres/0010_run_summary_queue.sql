-- 0010_run_summary_queue: completed runs waiting for their episodic summary.
--
-- FinishRun queues a run here in the transaction that completes it, and the
-- daemon's summary writer takes it off once the summary is stored (under a
-- memory id derived from the run's, so a crash between the two only repeats
-- an idempotent write). Before, summaries waited in a bounded in-process
-- queue: dropped when it was full, lost in a crash.
CREATE TABLE run_summary_queue (
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    project_id TEXT NOT NULL DEFAULT '',
    run_id     TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id, project_id, run_id)
) WITH (
    -- A row lives for a moment: vacuum its dead rows after a fixed number,
    -- as 0004 does for the other queues.
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);

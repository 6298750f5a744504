-- 0012_sessions: find a session's runs by its key.
--
-- GET /api/sessions/:session_key summarises the runs of one session of a
-- scope, whatever their agent; runs_session_completed_idx leads with the
-- agent, so without this index that read scans all of the scope's runs.
CREATE INDEX runs_session_idx ON runs (org_id, user_id, project_id, session_key);

-- openintern_write_prelude begins a write of a turn in one statement instead
-- of three: it makes the transaction's commit asynchronous (p_async, see
-- asyncCommit in store/postgres), takes the transaction advisory locks
-- p_locks in the order given (event locks or the agent's claim lock, before
-- any row lock), then checks the write's fence (openintern_check_fence) when
-- p_kind is not NULL.
CREATE FUNCTION openintern_write_prelude(p_async BOOLEAN, p_locks BIGINT[], p_org TEXT, p_user TEXT,
    p_project TEXT, p_kind TEXT, p_key TEXT, p_node TEXT, p_epoch BIGINT) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    k BIGINT;
BEGIN
    IF p_async THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    IF p_locks IS NOT NULL THEN
        FOREACH k IN ARRAY p_locks LOOP
            PERFORM pg_advisory_xact_lock(k);
        END LOOP;
    END IF;
    IF p_kind IS NOT NULL THEN
        PERFORM openintern_check_fence(p_org, p_user, p_project, p_kind, p_key, p_node, p_epoch);
    END IF;
    RETURN true;
END
$$;

-- newcomer: batch procedures say they must run outside a transaction block
-- (src/sql/60_job.sql); the store and department errors are in C.
-- _job_require_nonatomic(kind): a clear error (25001 inside a transaction
-- block, 2D000 in an atomic context) before a batch procedure's first
-- COMMIT would fail with a bare "invalid transaction termination".
CREATE FUNCTION loyalty._job_require_nonatomic(kind text) RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_job_require_nonatomic';
REVOKE ALL ON FUNCTION loyalty._job_require_nonatomic(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._job_require_nonatomic(text) TO loyalty_dba, loyalty_crm;

CREATE OR REPLACE PROCEDURE loyalty._job_run(kind text, params jsonb, batch_size integer)
    LANGUAGE plpgsql
AS $$
DECLARE
    job uuid;
    after uuid := '00000000-0000-0000-0000-000000000000';
    b record;
    failed boolean := false;
    st text;
    msg text;
    det text;
    hnt text;
BEGIN
    -- fails at once inside a transaction block, before anything is taken
    PERFORM loyalty._job_require_nonatomic(kind);
    COMMIT;
    job := loyalty._job_start(kind, params, batch_size);
    COMMIT;
    LOOP
        BEGIN
            b := loyalty._job_batch(kind, params, after, batch_size);
            IF b.processed > 0 THEN
                PERFORM loyalty._job_step(job, b.processed, b.changed);
            END IF;
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                    det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
            failed := true;
        END;
        IF failed THEN
            PERFORM loyalty._job_finish(job, st, msg);
            COMMIT;
            PERFORM loyalty._job_raise(st, msg, det, hnt);
        END IF;
        EXIT WHEN b.processed = 0;
        COMMIT;
        after := b.last_key;
    END LOOP;
    PERFORM loyalty._job_finish(job, NULL, NULL);
    COMMIT;
END
$$;

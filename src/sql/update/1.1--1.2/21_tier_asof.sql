-- replica (issue 14.4): the requalification and downgrade batches refuse an
-- as_of in the future (22023) before anything is written; previews may look ahead.
CREATE OR REPLACE PROCEDURE loyalty.tier_requalify(at timestamptz DEFAULT NULL,
    batch_size integer DEFAULT 5000, expired_only boolean DEFAULT false)
    LANGUAGE plpgsql
AS $$
BEGIN
    -- previews (tier_downgrade_preview) may look ahead; a batch may not
    IF at > pg_catalog.clock_timestamp() THEN
        RAISE EXCEPTION 'as_of must not be in the future'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A tier batch changes tiers only as of now or an earlier time.',
                  HINT = 'loyalty.tier_downgrade_preview() shows what a later run would do.';
    END IF;
    CALL loyalty._job_run(CASE WHEN expired_only THEN 'downgrade' ELSE 'requalify' END,
                          pg_catalog.jsonb_build_object('as_of', coalesce(at, pg_catalog.now())),
                          batch_size);
END
$$;

-- privacy: erasure scrubs free texts and re-keys the BI pseudonym (issue 12.7);
-- risk tag events allow erasure to remove a note (the body of src/sql/30_risk.sql)
CREATE OR REPLACE FUNCTION loyalty._risk_event_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.detail = OLD.detail - 'note'
       AND (NEW.event_id, NEW.tag_id, NEW.member_id, NEW.action, NEW.store_code, NEW.login,
            NEW.role, NEW.department, NEW.at)
           IS NOT DISTINCT FROM (OLD.event_id, OLD.tag_id, OLD.member_id, OLD.action, OLD.store_code,
                                 OLD.login, OLD.role, OLD.department, OLD.at) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the risk tag audit trail is append-only'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'Steps of loyalty.risk_tag_event are never updated or deleted.';
END
$$;
\ir 48_privacy_erasure.sql

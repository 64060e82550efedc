-- audit: the change-record interface (see src/sql/40_audit.sql)
-- loyalty._audit_change(member_id, action, purpose, detail): the record of
-- one change made by an API function, called by every mutating function
-- (issue 13).  Interface first: the engineers of other areas call it now;
-- its implementation (same transaction as the change, detail kept) is the
-- audit area's.  Until then it records through loyalty._audit(), with the
-- detail's keys as the fields.
CREATE FUNCTION loyalty._audit_change(member_id uuid, action text, purpose text,
    detail jsonb DEFAULT NULL)
    RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty._audit(member_id, action,
                          (SELECT pg_catalog.array_agg(k ORDER BY k)
                             FROM pg_catalog.jsonb_object_keys(
                                      CASE WHEN pg_catalog.jsonb_typeof(detail) = 'object'
                                           THEN detail ELSE '{}' END) k),
                          purpose)
$$;
REVOKE ALL ON FUNCTION loyalty._audit_change(uuid, text, text, jsonb) FROM PUBLIC;

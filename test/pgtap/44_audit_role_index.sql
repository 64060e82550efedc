-- pgTAP: the audit log's index by role is partial (docs/audit.md, "Traces";
-- issue 13: one index entry less per change record made by a login as
-- itself).  It holds the records made under a role by another login and
-- every lookup, ID check and refused lookup; the lookup budget's count by
-- role (loyalty._audit_recent) reads it, any other count by role reads the
-- log without it, and both count every record, indexed or not.
BEGIN;
SELECT plan(8);

SELECT loyalty.store_create('ri-s1', 'ria', 'Role Index A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create('ri-1', 'ri_desk', 'ria', 'frontdesk');
CREATE TEMP TABLE rim AS
SELECT (loyalty.member_enroll('ri-m1', 'ria', 'Role Index', '13855559001')).member_id AS m;
ALTER TABLE rim ADD card_no text;
UPDATE rim SET card_no = (SELECT m2.card_no FROM loyalty.member m2 WHERE m2.member_id = rim.m);
GRANT SELECT ON rim TO PUBLIC;

-- the predicate, on the default partition (a month's partition: at the end)
SELECT matches(pg_get_indexdef('loyalty._audit_log_default_role_idx'::regclass),
               'WHERE \(\(login <> role\) OR \(action = ANY \(ARRAY\[''lookup''::text, ''lookup_miss''::text, ''verify_id''::text, ''verify_id_miss''::text, ''lookup_refused''::text\]\)\)\)',
               'the default partition''s role index holds other logins'' records and lookups only');

-- a lookup under SET ROLE (login <> role) and one by the desk's own login
SET ROLE ri_desk;
SELECT count(*) FROM loyalty.frontdesk_lookup((SELECT card_no FROM rim), 'check-in');
RESET ROLE;
SET SESSION AUTHORIZATION ri_desk;
SELECT count(*) FROM loyalty.frontdesk_lookup((SELECT card_no FROM rim), 'check-in');
RESET SESSION AUTHORIZATION;
SELECT is(loyalty._audit_recent('ri_desk', NULL, '{lookup,lookup_miss,verify_id,verify_id_miss}', interval '1 hour'),
          2::bigint, 'the budget''s count by role counts both lookups');
SELECT is((SELECT count(*) FROM loyalty.audit_log a
            WHERE a.role = 'ri_desk' AND a.action = 'lookup' AND a.login = 'ri_desk'),
          1::bigint, 'one of them made by the login as itself');

-- a change record made by a login as itself is outside the index; a count
-- by role of its action still finds it
SET SESSION AUTHORIZATION ri_desk;
SELECT loyalty.preference_add((SELECT m FROM rim), 'pillow', 'soft', 'store', 'ria') IS NOT NULL;
RESET SESSION AUTHORIZATION;
CREATE TEMP TABLE ric AS
SELECT a.action FROM loyalty.audit_log a WHERE a.login = 'ri_desk' AND a.role = 'ri_desk' AND a.action NOT LIKE 'lookup%'
UNION ALL
SELECT s.action FROM loyalty.audit_change_staging s WHERE s.login = 'ri_desk' AND s.role = 'ri_desk';
SELECT is((SELECT count(*) FROM ric), 1::bigint, 'the desk''s own change has its record');
SELECT is(loyalty._audit_recent('ri_desk', NULL, ARRAY[(SELECT action FROM ric)], interval '1 hour')
          + (SELECT count(*) FROM loyalty.audit_change_staging s WHERE s.login = 'ri_desk'),
          1::bigint, 'a count by role of any other action finds it (chained or still staged)');
SELECT is(loyalty._audit_recent('ri_desk', NULL, ARRAY['lookup', (SELECT action FROM ric)], interval '1 hour')
          + (SELECT count(*) FROM loyalty.audit_change_staging s WHERE s.login = 'ri_desk'),
          3::bigint, 'lookups and the change together: three');

-- the budget's statement (src/privacy_lookup.c, loyalty_audit_recent) as a
-- generic plan: the constant list of lookup actions proves the predicate
SET LOCAL plan_cache_mode = force_generic_plan;
SET LOCAL enable_seqscan = off;
PREPARE budget_count(text, uuid, text[], interval) AS
SELECT count(*) FROM loyalty.audit_log a
 WHERE a.role OPERATOR(pg_catalog.=) $1
   AND a.action OPERATOR(pg_catalog.=) ANY ('{lookup,lookup_miss,verify_id,verify_id_miss,lookup_refused}'::pg_catalog.text[])
   AND a.at > pg_catalog.clock_timestamp() - $4
   AND a.action OPERATOR(pg_catalog.=) ANY ($3)
   AND ($2 IS NULL OR a.member_id OPERATOR(pg_catalog.=) $2);
CREATE FUNCTION pg_temp.explain_budget() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
    FOR l IN EXECUTE 'EXPLAIN EXECUTE budget_count(''ri_desk'', NULL, ''{lookup}'', ''1 hour'')' LOOP
        RETURN NEXT l;
    END LOOP;
END $$;
SELECT ok((SELECT bool_or(l ~ '_audit_log_default_role_idx') FROM pg_temp.explain_budget() l),
          'its generic plan reads the partial role index');
RESET enable_seqscan;
RESET plan_cache_mode;

-- last: creating a partition locks the log until the end of the test's
-- transaction, and an audited read would wait for its record behind it
SELECT is(pg_get_indexdef(format('loyalty.%I', loyalty._audit_partition_ensure(timestamptz '2091-03-15 00:00+00') || '_role_idx')::regclass),
          replace(pg_get_indexdef('loyalty._audit_log_default_role_idx'::regclass), '_audit_log_default', '_audit_log_2091_03'),
          'a month''s partition gets the same index');

SELECT * FROM finish();
ROLLBACK;

-- pgTAP: a hostile store role, one class of attack at a time.  Each attempt
-- is denied or yields only what the role may see.
BEGIN;
SELECT plan(44);

-- as_role(role, query): run a query as another role; its (only) column of
-- every row joined with '|', or 'ERROR <sqlstate>: <message>'.
CREATE FUNCTION pg_temp.as_role(r text, q text, setup text DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    rec record;
    res text;
BEGIN
    BEGIN
        EXECUTE format('SET LOCAL ROLE %I', r);
        IF setup IS NOT NULL THEN
            EXECUTE setup;
        END IF;
        IF q ~* '^\s*(SELECT|EXPLAIN|WITH|VALUES)' THEN
            FOR rec IN EXECUTE q LOOP
                res := coalesce(res || '|', '')
                    || coalesce((SELECT j.value FROM jsonb_each_text(to_jsonb(rec)) AS j LIMIT 1), '<null>');
            END LOOP;
        ELSE
            EXECUTE q;
            res := 'done';
        END IF;
        RESET ROLE;
        RETURN coalesce(res, '<none>');
    EXCEPTION WHEN OTHERS THEN
        RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;     -- the role reverts with the subtransaction
    END;
END
$$;
CREATE FUNCTION pg_temp.denied(r text, q text) RETURNS boolean
    LANGUAGE sql AS $$ SELECT pg_temp.as_role(r, q) LIKE 'ERROR 42501%' $$;

SELECT loyalty.store_create(gen_random_uuid()::text, 'atka', 'Attack A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'atkb', 'Attack B', 'bay', 'east', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'atk_a_desk', 'atka', 'frontdesk');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'atk_b_desk', 'atkb', 'frontdesk');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'atk_bi', NULL, 'bi');
CREATE TEMP TABLE ids AS
SELECT (loyalty.member_enroll(gen_random_uuid()::text, 'atka', '张三丰', '13812345678', 'zsf@example.com', '1988-03-14')).member_id AS m;
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out)
SELECT m, 'atka', '2026-01-01', '2026-01-02' FROM ids;
INSERT INTO loyalty.member_preference (member_id, category, value, scope, store_code)
SELECT m, 'room', 'A only: likes the garden wing', 'store', 'atka' FROM ids;
INSERT INTO loyalty.member_tag (member_id, code, store_code, note)
SELECT m, 'noise_complaint', 'atka', 'complained about room 1208 at 3am' FROM ids;
ANALYZE loyalty.member, loyalty.member_profile, loyalty.stay;
GRANT SELECT ON ids TO atk_b_desk, atk_a_desk;

-- 1. base tables
SELECT ok(pg_temp.denied('atk_b_desk', 'SELECT count(*) FROM loyalty.member'), 'base table member');
SELECT ok(pg_temp.denied('atk_b_desk', 'SELECT count(*) FROM loyalty.member_profile'), 'base table member_profile');
SELECT ok(pg_temp.denied('atk_b_desk', 'SELECT count(*) FROM loyalty.member_identity'), 'base table member_identity');
SELECT ok(pg_temp.denied('atk_b_desk', 'SELECT count(*) FROM loyalty.stay'), 'base table stay');
SELECT ok(pg_temp.denied('atk_b_desk', 'SELECT count(*) FROM loyalty.member_preference'), 'base table member_preference');
SELECT ok(pg_temp.denied('atk_b_desk', 'SELECT count(*) FROM loyalty.audit_log'), 'base table audit_log');
SELECT ok(pg_temp.denied('atk_bi', 'SELECT count(*) FROM loyalty.member_profile'), 'BI: base table member_profile');
SELECT is((SELECT count(*)::int FROM pg_class c, unnest(ARRAY['loyalty_frontdesk', 'loyalty_housekeeping',
              'loyalty_fnb', 'loyalty_store_manager', 'loyalty_bi']) AS g
            WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relkind = 'r' AND c.relname <> 'store'
              AND has_table_privilege(g, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')),
          0, 'store and BI groups hold no privilege on any base table (but the store directory)');

-- 2. other stores' rows
SELECT is(pg_temp.as_role('atk_b_desk', 'SELECT count(*) FROM loyalty.stays'), '0', 'B sees none of A''s stays');
SELECT is(pg_temp.as_role('atk_a_desk', 'SELECT count(*) FROM loyalty.stays'), '1', 'A sees its own stay');
SELECT is(pg_temp.as_role('atk_b_desk', $$SELECT count(*) FROM loyalty.member_preferences WHERE scope = 'store'$$),
          '0', 'B sees none of A''s store-only preferences');
-- since 1.2 a store lists only the tags of members in its reach (issue 12.1;
-- test/pgtap/68_crm_tags.sql shows the hidden note once the member is)
SELECT is(pg_temp.as_role('atk_b_desk', 'SELECT coalesce(note, ''<hidden>'') FROM loyalty.member_tags'),
          '<none>', 'B does not list the tags of A''s member, who is out of its reach');
SELECT is(pg_temp.as_role('atk_a_desk', 'SELECT note FROM loyalty.member_tags'),
          'complained about room 1208 at 3am', 'A sees its own note');
SELECT is(pg_temp.as_role('atk_b_desk', 'SELECT count(*) FROM loyalty.stays WHERE store_code = ''atka'' OR true'),
          '0', 'a tautology does not widen the row filter');

-- 3. unmasked columns
SELECT is(pg_temp.as_role('atk_a_desk', 'SELECT phone || '' '' || full_name || '' '' || email FROM loyalty.member_frontdesk'),
          '****678 张** z***@***', 'the view holds masked values only');
SELECT ok(pg_temp.denied('atk_a_desk', 'SELECT count(*) FROM loyalty.member_crm'), 'another department''s view');
SELECT is(pg_temp.as_role('atk_b_desk', 'SELECT count(*) FROM loyalty.member_frontdesk'),
          '0', 'another store lists none of A''s members (issue 12.1)');

-- 4. inference: filters, sorts, joins, aggregates, errors, EXPLAIN, pg_stats, constraints
SELECT is(pg_temp.as_role('atk_a_desk', $$SELECT count(*) FROM loyalty.member_frontdesk WHERE phone = '13812345678'$$),
          '0', 'filter on the raw value matches nothing');
SELECT is(pg_temp.as_role('atk_a_desk', $$SELECT count(*) FROM loyalty.member_frontdesk WHERE phone LIKE '%1234%'$$),
          '0', 'filter on hidden digits matches nothing');
SELECT is(pg_temp.as_role('atk_a_desk', $$SELECT count(*) FROM loyalty.member_frontdesk WHERE full_name > '张三'$$),
          '0', 'range filter compares the masked name');
SELECT is(pg_temp.as_role('atk_a_desk', $$SELECT count(*) FROM loyalty.member_frontdesk f
              JOIN (VALUES ('13812345678'), ('13812345679')) AS guess(p) ON f.phone = guess.p$$),
          '0', 'join against guesses matches nothing');
SELECT is(pg_temp.as_role('atk_a_desk', 'SELECT min(phone) || max(full_name) FROM loyalty.member_frontdesk'),
          '****678张**', 'aggregates see masked values');
SELECT is(pg_temp.as_role('atk_a_desk', 'SELECT string_agg(phone, '','' ORDER BY phone) FROM loyalty.member_frontdesk'),
          '****678', 'sorts see masked values');
SELECT unalike(pg_temp.as_role('atk_a_desk', 'SELECT phone::bigint FROM loyalty.member_frontdesk'),
          '%12345678%', 'a cast error shows the masked value only');
SELECT is(pg_temp.as_role('atk_a_desk', $$SELECT CASE WHEN phone = '13812345678' THEN 1 / (length(phone) - length(phone)) ELSE 1 END FROM loyalty.member_frontdesk$$),
          '1', 'an error planted behind a raw-value test never fires');
SELECT is(pg_temp.as_role('atk_a_desk', $$EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM loyalty.member_frontdesk WHERE phone = '13812345678'$$),
          'ERROR 42501: permission denied to explain queries', 'EXPLAIN is refused (issue 12.2)');
SELECT is(pg_temp.as_role('atk_a_desk', $$SELECT count(*) FROM pg_stats WHERE schemaname = 'loyalty'$$),
          '0', 'pg_stats shows no column statistics of the base tables');
SELECT ok(pg_temp.denied('atk_b_desk', $$INSERT INTO loyalty.member_profile (member_id, full_name, phone) SELECT m, 'x', '13812345678' FROM ids$$),
          'no constraint probing by insert');
SELECT is(pg_temp.as_role('atk_b_desk', format('SELECT loyalty.frontdesk_lookup(%L)', loyalty.new_card_number())),
          'ERROR P0002: member not found', 'a missing member: not found');
SELECT is(pg_temp.as_role('atk_b_desk', $$SELECT loyalty.preferences(gen_random_uuid())$$),
          'ERROR P0002: member not found', 'preferences of a missing member: the same not found');

-- 5. leaky functions, also in pg_temp
SELECT ok(pg_temp.denied('atk_b_desk', $$CREATE FUNCTION pg_temp.leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS 'BEGIN RAISE NOTICE ''%'', $1; RETURN true; END'$$),
          'no function in pg_temp');
SELECT ok(pg_temp.denied('atk_b_desk', $$CREATE FUNCTION public.leak(text) RETURNS boolean LANGUAGE sql AS 'SELECT true'$$),
          'no function in public');
SELECT ok(pg_temp.denied('atk_b_desk', $$CREATE TEMP TABLE loot (x text)$$), 'no temporary tables');
-- TEMP stays with PUBLIC (other applications keep it); the store role is
-- refused by the loyalty_temp_guard event trigger (docs/installation.md)
SELECT ok(NOT has_database_privilege('atk_b_desk', current_database(), 'CREATE')
          AND has_database_privilege('public', current_database(), 'TEMP'), 'no CREATE on the database; TEMP not revoked from PUBLIC');

-- 6. search_path tricks against SECURITY DEFINER functions
SELECT is((SELECT count(*)::int FROM pg_proc WHERE pronamespace = 'loyalty'::regnamespace AND prosecdef
            AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (proconfig), false)), 0,
          'every SECURITY DEFINER function pins its search_path');
SELECT is(pg_temp.as_role('atk_b_desk', format($$SELECT set_config('search_path', 'pg_temp, public', true) || (SELECT full_name FROM loyalty.frontdesk_lookup(%L))$$,
              (SELECT card_no FROM loyalty.member WHERE member_id = (SELECT m FROM ids)))),
          'pg_temp, public张**', 'the caller''s search_path does not change the API');

-- 7. settings and SET ROLE
-- (SET ROLE and SET SESSION AUTHORIZATION are checked against the session
-- user, a superuser here: test/t/040_privacy.pl tries them as real logins)
SELECT ok(NOT pg_has_role('atk_a_desk', 'loyalty_atkb_frontdesk', 'MEMBER')
          AND NOT pg_has_role('atk_a_desk', 'atk_b_desk', 'MEMBER'),
          'a store login cannot become another store''s role');
SELECT is(pg_temp.as_role('atk_b_desk', $$SELECT set_config('loyalty.store', 'atka', true) || loyalty.caller_store()$$),
          'atkaatkb', 'a setting does not change the caller''s store');
SELECT is(pg_temp.as_role('atk_b_desk', 'SELECT count(*) FROM loyalty.stays', 'SET LOCAL row_security = off'),
          'ERROR 42501: query would be affected by row-level security policy for table "stay"',
          'row_security = off refuses instead of revealing');

-- 8. updating through views
SELECT ok(pg_temp.as_role('atk_b_desk', $$UPDATE loyalty.member_frontdesk SET status = 'erased'$$) ~ '^ERROR (42501|55000)',
          'UPDATE through a member view');
SELECT ok(pg_temp.denied('atk_b_desk', $$INSERT INTO loyalty.stays (member_id, store_code, check_in, check_out) SELECT m, 'atkb', '2026-01-01', '2026-01-02' FROM ids$$),
          'INSERT through the stays view');
SELECT ok(pg_temp.denied('atk_b_desk', $$DELETE FROM loyalty.member_preferences$$), 'DELETE through the preferences view');

-- 9. COPY
SELECT ok(pg_temp.denied('atk_b_desk', $$COPY loyalty.member_profile TO '/tmp/loot.csv'$$), 'COPY a base table to a file');
SELECT ok(pg_temp.as_role('atk_b_desk', $$COPY (SELECT * FROM loyalty.member_frontdesk) TO '/tmp/loot.csv'$$) LIKE 'ERROR 42501%',
          'COPY to a server file');

SELECT * FROM finish();
ROLLBACK;

-- pgTAP: the member-facing role (docs/crm.md): a guest app login bound to
-- one member reads its own profile, statement, tier and consents, changes
-- its contact data and consents, and asks for export or erasure; it
-- reaches no other member and nothing else; bad input with its SQLSTATE
-- and nothing written; only HQ CRM binds.
BEGIN;
SELECT plan(36);

CREATE FUNCTION pg_temp.as_role(r text, q text) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    res text;
BEGIN
    BEGIN
        EXECUTE format('SET LOCAL ROLE %I', r);
        EXECUTE q INTO res;
        RESET ROLE;
        RETURN coalesce(res, '<null>');
    EXCEPTION WHEN OTHERS THEN
        RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
    END;
END
$$;

SELECT loyalty.store_create('ap-s1', 'apa', 'App A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create('ap-1', 'ap_a_desk', 'apa', 'frontdesk');
SELECT loyalty.staff_create('ap-2', 'ap_crm', NULL, 'crm');
CREATE ROLE ap_guest_1 LOGIN;
CREATE ROLE ap_guest_2 LOGIN;
CREATE TEMP TABLE am AS
SELECT 1 AS n, (loyalty.member_enroll('ap-m1', 'apa', 'App One', '13844445555', 'one@example.com')).member_id AS m
UNION ALL
SELECT 2, (loyalty.member_enroll('ap-m2', 'apa', 'App Two', '13844446666')).member_id;
GRANT SELECT ON am TO PUBLIC;
SELECT loyalty.points_accrue('ap-p1', (SELECT m FROM am WHERE n = 1), 'apa', 1200, 'adjustment');

-- binding: HQ CRM only, one member per login, no staff logins
SELECT ok(pg_temp.as_role('ap_a_desk', $$SELECT loyalty.member_app_bind('ap-b0', 'ap_guest_1', (SELECT m FROM am WHERE n = 1))::text$$)
          LIKE 'ERROR 42501%', 'a front desk may not bind');
SELECT ok(pg_temp.as_role('ap_guest_1', $$SELECT loyalty.my_profile()::text$$) LIKE 'ERROR 42501%', 'unbound: no access');
SELECT is(pg_temp.as_role('ap_crm', $$SELECT loyalty.member_app_bind('ap-b1', 'ap_guest_1', (SELECT m FROM am WHERE n = 1))::text$$),
          '', 'HQ CRM binds guest 1 to member 1');
SELECT ok(pg_has_role('ap_guest_1', 'loyalty_member_app', 'MEMBER'), 'the login joined loyalty_member_app');
SELECT is(pg_temp.as_role('ap_crm', $$SELECT loyalty.member_app_bind('ap-b1', 'ap_guest_1', (SELECT m FROM am WHERE n = 1))::text$$),
          '', 'a retry is a no-op');
SELECT ok(pg_temp.as_role('ap_crm', $$SELECT loyalty.member_app_bind('ap-b2', 'ap_guest_1', (SELECT m FROM am WHERE n = 2))::text$$)
          LIKE 'ERROR 23505%', 'a login acts for one member only (23505)');
SELECT ok(pg_temp.as_role('ap_crm', $$SELECT loyalty.member_app_bind('ap-b3', 'ap_a_desk', (SELECT m FROM am WHERE n = 2))::text$$)
          LIKE 'ERROR 22023%staff%', 'a staff login cannot be bound (22023)');
SELECT ok(pg_temp.as_role('ap_crm', $$SELECT loyalty.member_app_bind('ap-b4', 'ap_nobody', (SELECT m FROM am WHERE n = 2))::text$$)
          LIKE 'ERROR 42704%', 'an unknown role: 42704');
SELECT ok(pg_temp.as_role('ap_crm', $$SELECT loyalty.member_app_bind('ap-b5', 'ap_guest_2', gen_random_uuid())::text$$)
          LIKE 'ERROR P0002%', 'an unknown member: P0002');
SELECT is((SELECT count(*)::int FROM loyalty.member_app_login WHERE login LIKE 'ap\_%'), 1, 'only the good binding was written');

-- reading its own data
SELECT is(pg_temp.as_role('ap_guest_1', $$SELECT (p->>'full_name') || ' ' || (p->>'phone') || ' ' || (p->>'balance')
            FROM loyalty.my_profile() p$$), 'App One 13844445555 1200', 'own profile, unmasked, with the balance');
SELECT is((SELECT count(*)::int FROM loyalty.audit_log WHERE member_id = (SELECT m FROM am WHERE n = 1) AND action = 'profile'
            AND purpose = 'member'), 1, 'the read is audited, purpose member');
SELECT is(pg_temp.as_role('ap_guest_1', $$SELECT string_agg(kind || ':' || points, ',') FROM loyalty.my_statement()$$),
          'accrue:1200', 'own statement');
SELECT ok(pg_temp.as_role('ap_guest_1', $$SELECT count(*)::text FROM loyalty.my_statement(0)$$) LIKE 'ERROR 22023%',
          'max_rows 0: 22023');
SELECT is(pg_temp.as_role('ap_guest_1', $$SELECT tier || ' ' || nights FROM loyalty.my_tier()$$), 'member 0', 'own tier and counters');
SELECT is(pg_temp.as_role('ap_guest_1', $$SELECT count(*)::text FROM loyalty.my_consents()$$), '0', 'no consents yet');

-- nothing else
SELECT ok(pg_temp.as_role('ap_guest_1', $$SELECT count(*)::text FROM loyalty.member_profile$$) LIKE 'ERROR 42501%',
          'no base table');
SELECT ok(pg_temp.as_role('ap_guest_1', $$SELECT count(*)::text FROM loyalty.member_frontdesk$$) LIKE 'ERROR 42501%',
          'no staff view');
SELECT ok(pg_temp.as_role('ap_guest_1', $$SELECT loyalty.points_balance((SELECT m FROM am WHERE n = 2))::text$$) LIKE 'ERROR 42501%',
          'no staff function, so no other member');
SELECT ok(pg_temp.as_role('ap_guest_2', $$SELECT count(*)::text FROM loyalty.my_statement()$$) LIKE 'ERROR 42501%',
          'an unbound login gets nothing');
SELECT ok(pg_temp.as_role('ap_a_desk', $$SELECT loyalty.my_profile()::text$$) LIKE 'ERROR 42501%', 'staff cannot use the app functions');

-- writing: contact data and consents
SELECT is(pg_temp.as_role('ap_guest_1', $$SELECT loyalty.my_contact_update('ap-u1', phone => '13900001111', email => '')::text$$),
          '{phone,email}', 'new phone, email cleared');
SELECT is((SELECT row(phone, email, last_verified_at IS NOT NULL)::text FROM loyalty.member_profile JOIN loyalty.member USING (member_id)
            WHERE member_id = (SELECT m FROM am WHERE n = 1)), '(13900001111,,t)', 'written, and counts as verified');
SELECT is(pg_temp.as_role('ap_guest_1', $$SELECT loyalty.my_contact_update('ap-u1', phone => '13900001111', email => '')::text$$),
          '{phone,email}', 'a retry returns the first answer');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox WHERE kind = 'member_updated' AND member_id = (SELECT m FROM am WHERE n = 1)),
          1, 'one member_updated event');
SELECT ok(pg_temp.as_role('ap_guest_1', $$SELECT loyalty.my_contact_update('ap-u2', phone => '12ab')::text$$) LIKE 'ERROR 22023%',
          'bad phone: 22023');
SELECT ok(pg_temp.as_role('ap_guest_1', $$SELECT loyalty.my_contact_update('ap-u3', phone => '13900002222', email => 'not-an-email')::text$$)
          LIKE 'ERROR 22023%', 'bad email: 22023');
SELECT is((SELECT phone FROM loyalty.member_profile WHERE member_id = (SELECT m FROM am WHERE n = 1)), '13900001111',
          'and nothing was written by the bad call');
SELECT ok(pg_temp.as_role('ap_guest_1', $$SELECT loyalty.my_contact_update('ap-u4')::text$$) LIKE 'ERROR 22023%',
          'nothing to change: 22023');
SELECT is(pg_temp.as_role('ap_guest_1', $$SELECT loyalty.my_consent_set('ap-c1', 'marketing_email', false, 'v3')::text$$),
          '', 'withdraws marketing email');
SELECT is(pg_temp.as_role('ap_guest_1', $$SELECT purpose || ':' || granted FROM loyalty.my_consents()$$), 'marketing_email:false',
          'the consent in force');
SELECT ok(pg_temp.as_role('ap_guest_1', $$SELECT loyalty.my_consent_set('ap-c2', 'telepathy', true, 'v3')::text$$)
          LIKE 'ERROR 22023%', 'bad purpose: 22023');

-- export and erasure requests
SELECT ok(pg_temp.as_role('ap_guest_1', $$SELECT loyalty.my_request('ap-r1', 'erasure')::text$$) ~ '^[0-9a-f-]{36}$',
          'asks for erasure');
SELECT is((SELECT kind || ' ' || login FROM loyalty.member_app_request WHERE member_id = (SELECT m FROM am WHERE n = 1)),
          'erasure ap_guest_1', 'recorded for HQ, with the login');
SELECT ok(pg_temp.as_role('ap_guest_1', $$SELECT loyalty.my_request('ap-r2', 'delete_everything')::text$$) LIKE 'ERROR 22023%',
          'bad kind: 22023');

-- unbinding ends access
SELECT loyalty.member_app_unbind('ap-x1', 'ap_guest_1');
SELECT ok(pg_temp.as_role('ap_guest_1', $$SELECT loyalty.my_profile()::text$$) LIKE 'ERROR 42501%', 'after unbinding: no access');

SELECT * FROM finish();
ROLLBACK;

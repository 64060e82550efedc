-- pgTAP (issue 12.5): consent drives the views.  As the hostile marketing
-- and BI logins: a member who withdrew (or never gave) marketing or
-- profiling consent is in no marketing audience and no BI view; marketing
-- sees a contact field only for the channel the member consented to, and
-- the unmasked contact only through marketing_contacts(), audited per
-- member with the purpose.
BEGIN;
SELECT plan(16);

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
        RETURN 'ERROR ' || SQLSTATE;
    END;
END
$$;

SELECT loyalty.store_create(gen_random_uuid()::text, 'csa', 'Consent A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'cs_mkt', NULL, 'marketing'),
       loyalty.staff_create(gen_random_uuid()::text, 'cs_bi', NULL, 'bi'),
       loyalty.staff_create(gen_random_uuid()::text, 'cs_desk', 'csa', 'frontdesk');
-- yes: consented to everything; mail: email only, no profiling; gone: gave
-- everything and withdrew it; never: no consent recorded
CREATE TEMP TABLE cs AS
SELECT (loyalty.member_enroll(gen_random_uuid()::text, 'csa', '王小明', '13700000001', 'yes@example.com', '1980-01-01')).member_id AS yes,
       (loyalty.member_enroll(gen_random_uuid()::text, 'csa', '李小红', '13700000002', 'mail@example.com', '1981-01-01')).member_id AS mail,
       (loyalty.member_enroll(gen_random_uuid()::text, 'csa', '赵小刚', '13700000003', 'gone@example.com', '1982-01-01')).member_id AS gone,
       (loyalty.member_enroll(gen_random_uuid()::text, 'csa', '孙小美', '13700000004', 'never@example.com', '1983-01-01')).member_id AS never;
GRANT SELECT ON cs TO PUBLIC;
SELECT loyalty.consent_record(yes, p, true, 'n1') FROM cs, unnest(ARRAY['marketing_email', 'marketing_sms', 'profiling']) AS p;
SELECT loyalty.consent_record(mail, 'marketing_email', true, 'n1') FROM cs;
SELECT loyalty.consent_record(gone, p, true, 'n1') FROM cs, unnest(ARRAY['marketing_email', 'marketing_sms', 'profiling']) AS p;
SELECT loyalty.consent_record(gone, p, false, 'n2') FROM cs, unnest(ARRAY['marketing_email', 'marketing_sms', 'profiling']) AS p;

-- the marketing audience
SELECT is(pg_temp.as_role('cs_mkt', $$SELECT string_agg(full_name, ',' ORDER BY full_name) FROM loyalty.member_marketing WHERE home_store = 'csa'$$),
          (SELECT string_agg(n, ',' ORDER BY n) FROM unnest(ARRAY['王**', '李**']) n),
          'the marketing view lists only members with a marketing consent in effect');
SELECT is(pg_temp.as_role('cs_mkt', 'SELECT count(*) FROM loyalty.member_marketing WHERE member_id = (SELECT gone FROM cs)'),
          '0', 'a member who withdrew is not in the audience');
SELECT is(pg_temp.as_role('cs_mkt', 'SELECT count(*) FROM loyalty.member_marketing WHERE member_id = (SELECT never FROM cs)'),
          '0', 'nor one who never consented');
SELECT is(pg_temp.as_role('cs_mkt', 'SELECT row(phone, email)::text FROM loyalty.member_marketing WHERE member_id = (SELECT yes FROM cs)'),
          '(****001,y***@***)', 'both channels consented: both contact fields, masked');
SELECT is(pg_temp.as_role('cs_mkt', 'SELECT row(phone, email)::text FROM loyalty.member_marketing WHERE member_id = (SELECT mail FROM cs)'),
          '(,m***@***)', 'email only: no phone');

-- the unmasked contact, audited
SELECT is(pg_temp.as_role('cs_mkt', $$SELECT string_agg(contact, ',' ORDER BY contact) FROM loyalty.marketing_contacts('email', 'spring campaign')
                                      WHERE member_id IN (SELECT yes FROM cs UNION ALL SELECT mail FROM cs UNION ALL SELECT gone FROM cs UNION ALL SELECT never FROM cs)$$),
          'mail@example.com,yes@example.com', 'email contacts: only the members who consented to email');
SELECT is(pg_temp.as_role('cs_mkt', $$SELECT string_agg(contact, ',' ORDER BY contact) FROM loyalty.marketing_contacts('sms', 'spring campaign')
                                      WHERE member_id IN (SELECT yes FROM cs UNION ALL SELECT mail FROM cs UNION ALL SELECT gone FROM cs UNION ALL SELECT never FROM cs)$$),
          '13700000001', 'SMS contacts: only the member who consented to SMS');
SELECT is((SELECT count(*)::int FROM loyalty.audit_log WHERE role = 'cs_mkt' AND action = 'contact_read'
            AND purpose = 'spring campaign' AND member_id IN (SELECT yes FROM cs UNION ALL SELECT mail FROM cs)), 3,
          'each unmasked contact read is audited with the purpose');
SELECT is((SELECT count(*)::int FROM loyalty.audit_log WHERE role = 'cs_mkt' AND action = 'contact_read'
            AND member_id IN (SELECT gone FROM cs UNION ALL SELECT never FROM cs)), 0,
          'members without consent are neither read nor audited');
SELECT is(pg_temp.as_role('cs_mkt', $$SELECT count(*) FROM loyalty.marketing_contacts('post', 'x')$$),
          'ERROR 22023', 'unknown channel');
SELECT is(pg_temp.as_role('cs_desk', $$SELECT count(*) FROM loyalty.marketing_contacts('email', 'x')$$),
          'ERROR 42501', 'a store login gets no contact list');
SELECT is(pg_temp.as_role('cs_bi', $$SELECT count(*) FROM loyalty.marketing_contacts('email', 'x')$$),
          'ERROR 42501', 'nor does BI');

-- BI (k = 1: single members; k-anonymity is test/pgtap/48_privacy_kanon.sql)
SET LOCAL loyalty.bi_k_anonymity = 1;
SELECT is(pg_temp.as_role('cs_bi', $$SELECT count(*) FROM loyalty.bi_members WHERE home_store = 'csa'$$),
          '1', 'bi_members: only the member with a profiling consent in effect');
SELECT is(pg_temp.as_role('cs_bi', 'SELECT count(*) FROM loyalty.bi_members WHERE member_key IN (SELECT loyalty.pseudonym(gone) FROM cs UNION ALL SELECT loyalty.pseudonym(never) FROM cs UNION ALL SELECT loyalty.pseudonym(mail) FROM cs)'),
          '0', 'withdrawn, never given or marketing-only: not in bi_members');
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, status)
SELECT x, 'csa', '2026-10-01', '2026-10-03', 'checked_out' FROM cs, unnest(ARRAY[yes, mail, gone, never]) AS x;
SELECT is(pg_temp.as_role('cs_bi', $$SELECT count(*) FROM loyalty.bi_stays WHERE store_code = 'csa'$$),
          '1', 'bi_stays: only the stays of the member with a profiling consent');
SELECT is(pg_temp.as_role('cs_bi', $$SELECT coalesce(sum(members), 0) FROM loyalty.bi_segments WHERE home_store = 'csa'$$),
          '0', 'bi_segments: a group of one consenting member is suppressed anyway');

SELECT * FROM finish();
ROLLBACK;

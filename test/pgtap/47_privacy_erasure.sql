-- pgTAP (issue 12.7): erasure leaves no personal value anywhere.  A member
-- with a phone, an e-mail, an ID number, notes, risk tag events, a service
-- case, audit records and a changed phone number is erased; then every
-- text, jsonb and array column of every table of schema loyalty is searched
-- for the old name, phones, e-mail, ID number and card number.  The BI
-- pseudonym is re-keyed, the audit chain still verifies, and purposes or
-- reasons carrying personal data are refused before anything is written.
BEGIN;
SELECT plan(12);

SELECT loyalty.store_create(gen_random_uuid()::text, 'era', 'Erasure A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'er_desk', 'era', 'frontdesk'),
       loyalty.staff_create(gen_random_uuid()::text, 'er_crm', NULL, 'crm');

CREATE TEMP TABLE em AS
SELECT (e).member_id AS m, (e).card_no AS card
  FROM (SELECT loyalty.member_enroll(gen_random_uuid()::text, 'era', '欧阳娜娜', '13712340047',
                                     'oyn0047@example.com', '1990-01-02') AS e) s;
GRANT SELECT ON em TO PUBLIC;
-- the values to look for afterwards
CREATE TEMP TABLE needle (what text, v text);
INSERT INTO needle SELECT 'name', '欧阳娜娜' UNION ALL SELECT 'phone', '13712340047'
    UNION ALL SELECT 'new phone', '13712349947' UNION ALL SELECT 'email', 'oyn0047@example.com'
    UNION ALL SELECT 'id number', '110105199001020047' UNION ALL SELECT 'card number', card FROM em;

SELECT loyalty.identity_set(m, 'resident_id', '110105199001020047') FROM em;
SELECT loyalty.consent_record(m, 'profiling', true, 'v1', 'era') FROM em;
SELECT loyalty.preference_add(m, 'pillow', 'down, call 13712340047', 'chain', 'era') FROM em;
SELECT loyalty.tag_add(gen_random_uuid()::text, m, 'vip', '欧阳娜娜 prefers oyn0047@example.com', 'chain', false, 'era')
  FROM em;
CREATE TEMP TABLE rt AS
SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, m, 'era', 'unresolved_violation',
                              'broke a TV, reach 欧阳娜娜 on 13712340047', 300) AS tag FROM em;
SELECT loyalty.risk_tag_resolve(gen_random_uuid()::text, tag, 'settled', 'paid by oyn0047@example.com') FROM rt;
SELECT loyalty.case_open(gen_random_uuid()::text, m, 'complaint', 'phone', 'high',
                         '欧阳娜娜 (13712340047) says the room was cold', 'era') FROM em;
SELECT loyalty.interaction_log(gen_random_uuid()::text, m, 'phone', 'call',
                               'called back on 13712340047, mail oyn0047@example.com', NULL, 'era') FROM em;
SELECT loyalty.member_update(gen_random_uuid()::text, m, '{"phone": "13712349947"}') FROM em;
-- a read on record, by the front desk, with a purpose code
SET LOCAL ROLE er_desk;
SELECT count(*) FROM loyalty.frontdesk_lookup((SELECT card FROM em), 'check_in');
RESET ROLE;
CREATE TEMP TABLE before AS SELECT loyalty.pseudonym(m) AS key FROM em;

-- 1. free text with personal data is refused before anything is written
SET LOCAL ROLE er_desk;
SELECT throws_ok($$SELECT * FROM loyalty.frontdesk_lookup((SELECT card FROM em), 'guest 13712349947')$$,
    '22023', 'an audit purpose or reason must not carry personal data',
    'a lookup purpose with a phone number is refused');
SELECT throws_ok($$SELECT * FROM loyalty.frontdesk_lookup((SELECT card FROM em), 'mail oyn0047@example.com')$$,
    '22023', NULL, 'a lookup purpose with an e-mail address is refused');
RESET ROLE;
SET LOCAL ROLE er_crm;
SELECT throws_ok($$SELECT loyalty.member_erase((SELECT m FROM em), '欧阳娜娜 asked at the desk')$$,
    '22023', 'an audit purpose or reason must not carry personal data',
    'an erasure reason with the member''s name is refused');
RESET ROLE;
SELECT is((SELECT status FROM loyalty.member WHERE member_id = (SELECT m FROM em)), 'active',
    '... and nothing was erased');

-- 2. erase
SET LOCAL ROLE er_crm;
SELECT lives_ok($$SELECT loyalty.member_erase((SELECT m FROM em), 'member request')$$, 'HQ CRM erases');
RESET ROLE;

-- 3. search every text, jsonb and array column of every table of loyalty
CREATE TEMP TABLE hits (tbl text, col text, what text);
DO $$
DECLARE
    c record;
    n record;
    found boolean;
BEGIN
    FOR c IN SELECT k.relname, a.attname
               FROM pg_class k
               JOIN pg_namespace s ON s.oid = k.relnamespace AND s.nspname = 'loyalty'
               JOIN pg_attribute a ON a.attrelid = k.oid AND a.attnum > 0 AND NOT a.attisdropped
              WHERE k.relkind IN ('r', 'p')
                AND (a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'name'::regtype, 'bpchar'::regtype,
                                    'jsonb'::regtype, 'json'::regtype)
                     OR (SELECT t.typcategory FROM pg_type t WHERE t.oid = a.atttypid) = 'A')
    LOOP
        FOR n IN SELECT * FROM needle LOOP
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM loyalty.%I WHERE strpos(%I::text, $1) > 0)',
                           c.relname, c.attname)
               INTO found USING n.v;
            IF found THEN
                INSERT INTO hits VALUES (c.relname, c.attname, n.what);
            END IF;
        END LOOP;
    END LOOP;
END
$$;
SELECT is((SELECT string_agg(format('%s.%s: %s', tbl, col, what), '; ' ORDER BY tbl, col, what) FROM hits),
          NULL, 'no personal value of the erased member left in any table of schema loyalty');
SELECT ok((SELECT count(*) FROM pg_class k JOIN pg_namespace s ON s.oid = k.relnamespace
            WHERE s.nspname = 'loyalty' AND k.relkind IN ('r', 'p')) > 50, 'the search covered every table');
SELECT is((SELECT detail ? 'note' FROM loyalty.risk_tag_event WHERE tag_id = (SELECT tag FROM rt) AND action = 'resolved'),
          false, 'the risk tag event keeps its step, without the note');

-- 4. pseudonym re-keyed, chain intact
SELECT isnt(loyalty.pseudonym(m), (SELECT key FROM before), 'the BI pseudonym changed') FROM em;
SELECT is((SELECT count(*)::int FROM loyalty.member_pseudonym_key WHERE member_id = (SELECT m FROM em)), 1,
          'the member has a new random seed');
SELECT is((SELECT count(*)::int FROM loyalty.audit_verify()), 0, 'audit_verify() finds no broken record');
SELECT throws_ok($$UPDATE loyalty.risk_tag_event SET login = 'x' WHERE tag_id = (SELECT tag FROM rt)$$,
    '42501', NULL, 'risk tag events stay append-only otherwise');

SELECT * FROM finish();
ROLLBACK;

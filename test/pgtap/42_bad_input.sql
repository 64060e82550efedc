-- pgTAP: bad input to the privacy functions gets a clear error with the
-- right SQLSTATE and leaves nothing written.
BEGIN;
SELECT plan(24);

SELECT lives_ok($$SELECT loyalty.store_create(gen_random_uuid()::text, 'bip', 'Bad Input', 'bay', 'south', 'Asia/Shanghai')$$, 'setup store');
CREATE TEMP TABLE bm AS SELECT (loyalty.member_enroll(gen_random_uuid()::text, 'bip', '周杰', '13511112222')).member_id AS m;
CREATE TEMP TABLE before AS
SELECT (SELECT count(*) FROM loyalty.field_policy) AS policies,
       (SELECT count(*) FROM loyalty.member_preference) AS prefs,
       (SELECT count(*) FROM loyalty.member_identity) AS identities,
       (SELECT count(*) FROM loyalty.member_consent) AS consents;

SELECT throws_ok($$SELECT loyalty.field_policy_set('frontdesk', 'bank_card', 'show')$$, '22023', NULL, 'bank card never shown');
SELECT throws_ok($$SELECT loyalty.field_policy_set('frontdesk', 'shoe_size', 'show')$$, '22023', 'unknown member field "shoe_size"', 'unknown field');
SELECT throws_ok($$SELECT loyalty.field_policy_set('janitor', 'phone', 'show')$$, '22023', 'unknown department "janitor"', 'unknown department');
SELECT throws_ok($$SELECT loyalty.field_policy_set('frontdesk', NULL, 'show')$$, '22004', NULL, 'null field');
SELECT throws_ok($$SELECT loyalty.frontdesk_lookup('')$$, '22004', 'lookup key must not be empty', 'empty lookup key');
SELECT throws_ok($$SELECT loyalty.frontdesk_lookup(repeat('1', 33))$$, '22001', NULL, 'overlong lookup key');
SELECT throws_ok($$SELECT loyalty.frontdesk_lookup('00000000000')$$, '22023', 'lookup key is not a card number', 'a phone is no card number');
SELECT throws_ok($$SELECT loyalty.housekeeping_profile(gen_random_uuid())$$, 'P0002', 'member not found', 'unknown member');
SELECT throws_ok($$SELECT loyalty.preference_add((SELECT m FROM bm), 'shoes', 'x', 'chain', 'bip')$$, '22023', NULL, 'unknown category');
SELECT throws_ok($$SELECT loyalty.preference_add((SELECT m FROM bm), 'pillow', 'x', 'galaxy', 'bip')$$, '22023', NULL, 'unknown scope');
SELECT throws_ok($$SELECT loyalty.preference_add((SELECT m FROM bm), 'pillow', repeat('x', 201), 'chain', 'bip')$$, '22023', NULL, 'overlong value');
SELECT throws_ok($$SELECT loyalty.preference_add((SELECT m FROM bm), 'pillow', 'down', 'chain', 'nowhere')$$, 'P0002', NULL, 'unknown store');
SELECT throws_ok($$SELECT loyalty.preference_add((SELECT m FROM bm), 'pillow', 'down', 'chain')$$, '22004', NULL, 'HQ without a store');
SELECT throws_ok($$SELECT loyalty.preference_retire(gen_random_uuid())$$, 'P0002', 'preference not found', 'unknown preference');
SELECT throws_ok($$SELECT loyalty.identity_set((SELECT m FROM bm), 'passport', 'x!')$$, '22023', 'invalid ID number', 'malformed ID number, not echoed');
SELECT throws_ok($$SELECT loyalty.identity_set((SELECT m FROM bm), 'passport', NULL, '12')$$, '22023', 'invalid bank card number', 'malformed card');
SELECT throws_ok($$SELECT loyalty.identity_set((SELECT m FROM bm), 'passport', NULL, NULL)$$, '22004', 'nothing to store', 'nothing to store');
SELECT throws_ok($$SELECT loyalty.consent_record((SELECT m FROM bm), 'spam', true, 'n1', 'bip')$$, '22023', NULL, 'unknown consent purpose');
SELECT throws_ok($$SELECT loyalty.consent_record((SELECT m FROM bm), 'profiling', true, repeat('n', 51), 'bip')$$, '22023', NULL, 'overlong notice version');
SELECT throws_ok($$SELECT loyalty.member_erase((SELECT m FROM bm), ' ')$$, '22004', 'an erasure needs a reason', 'erasure without reason');
SELECT throws_ok($$SELECT * FROM loyalty.retention_purge(false, '1 day')$$, '22023', 'retention periods are too short', 'too short retention');
SELECT throws_ok($$SELECT loyalty._audit(NULL, NULL, NULL, NULL)$$, '22004', 'audit action must not be null', 'audit without action');
SELECT is((SELECT row((SELECT count(*) FROM loyalty.field_policy), (SELECT count(*) FROM loyalty.member_preference),
                      (SELECT count(*) FROM loyalty.member_identity), (SELECT count(*) FROM loyalty.member_consent))::text),
          (SELECT row(policies, prefs, identities, consents)::text FROM before),
          'nothing written by any failed call');

SELECT * FROM finish();
ROLLBACK;

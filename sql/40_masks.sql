-- Masks: character-aware, too-short values fully masked.
SELECT v, loyalty.mask_phone(v) AS phone, loyalty.mask_last4(v) AS last4
  FROM (VALUES ('13812345678'), ('+8613812345678'), ('１３８１２３４５６７８'),
               ('1234567'), ('12345678'), ('1234'), ('12345'), ('')) AS t(v);
SELECT v, loyalty.mask_name(v) AS name
  FROM (VALUES ('张三'), ('张三丰'), ('欧阳娜娜'), ('张'), ('J'), ('Jane Doe'),
               ('👍🏽李'), ('👨‍👩‍👧李雷'), ('🇨🇳中国'), ('é́x'), ('')) AS t(v);
SELECT v, loyalty.mask_email(v) AS email
  FROM (VALUES ('jane@example.com'), ('j@example.com'), ('张伟@例子.中国'),
               ('no-at-sign'), ('trailing@'), ('a@b@c.com')) AS t(v);
SELECT loyalty.mask_birth_year(d), loyalty.mask_birth_month_day(d), loyalty.mask_birth_decade(d)
  FROM (VALUES (DATE '1988-03-14'), (DATE '2000-12-31'), (DATE '1901-01-01')) AS t(d);
SELECT loyalty.mask_birth_year('infinity');
SELECT loyalty.mask_phone(NULL) IS NULL AS null_stays_null;

-- The field policy in effect, and the views generated from it.
SELECT department, string_agg(field || '=' || treatment, ' ' ORDER BY field)
  FROM loyalty.field_policy_current GROUP BY department ORDER BY department;
SELECT c.relname, c.reloptions, pg_get_userbyid(c.relowner) AS owner,
       r.rolsuper, r.rolbypassrls
  FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
 WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relkind = 'v'
   AND c.relname <> 'field_policy_current'
   -- DBA views over replication statistics, no member data (docs/replication.md)
   AND c.relname NOT IN ('replica_status', 'store_replica_state')
 ORDER BY 1;
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class
 WHERE relnamespace = 'loyalty'::regnamespace AND relname IN
   ('member', 'member_profile', 'member_identity', 'member_tag', 'member_consent',
    'member_preference', 'stay')
 ORDER BY 1;

-- A policy change regenerates the views in the same transaction.
SELECT loyalty.store_create(gen_random_uuid()::text, 'mka', 'Mask A', 'bay', 'south', 'Asia/Shanghai');
SELECT member_id AS m1 FROM loyalty.member_enroll(gen_random_uuid()::text, 'mka', '欧阳娜娜', '13812345678', 'nana@example.com', '1990-07-01') \gset
SELECT full_name, phone, email, birth_date FROM loyalty.member_housekeeping WHERE member_id = :'m1';
BEGIN;
SELECT loyalty.field_policy_set('housekeeping', 'phone', 'phone');
SELECT full_name, phone, email, birth_date FROM loyalty.member_housekeeping WHERE member_id = :'m1';
ROLLBACK;
SELECT full_name, phone FROM loyalty.member_housekeeping WHERE member_id = :'m1';
-- the regenerated views stay members of the extension
SELECT count(*) AS member_views_in_extension FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'loyalty')
   AND d.deptype = 'e' AND c.relname LIKE 'member\_%' AND c.relkind = 'v';

-- bad input: clear errors, nothing written
\set VERBOSITY terse
SELECT loyalty.field_policy_set('housekeeping', 'id_number', 'show');
SELECT loyalty.field_policy_set('housekeeping', 'shoe_size', 'show');
SELECT loyalty.field_policy_set('janitor', 'phone', 'show');
SELECT loyalty.field_policy_set('bi', 'phone', 'show');
SELECT loyalty.field_policy_set(NULL, 'phone', 'show');
INSERT INTO loyalty.field_policy (department, field, treatment) VALUES ('crm', 'bank_card', 'show');
\set VERBOSITY default
SELECT count(*) AS user_rows FROM loyalty.field_policy WHERE set_at <> '-infinity';

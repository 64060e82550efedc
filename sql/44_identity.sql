-- Sensitive identity data at rest: encrypted, blind index, last four,
-- verification instead of decryption.
\set VERBOSITY terse
-- this database's key: the key file loyalty.key_file names (made once per
-- server by the first database, taken by the others: docs/privacy.md)
SELECT loyalty.key_create() IN ('created', 'adopted') AS key_made;
SELECT loyalty.store_create(gen_random_uuid()::text, 'ida', 'ID A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'id_a_desk', 'ida', 'frontdesk'),
       loyalty.staff_create(gen_random_uuid()::text, 'id_a_house', 'ida', 'housekeeping');
SELECT member_id AS m FROM loyalty.member_enroll(gen_random_uuid()::text, 'ida', '王芳', '13700001111') \gset
SELECT member_id AS m2 FROM loyalty.member_enroll(gen_random_uuid()::text, 'ida', '李娜', '13700002222') \gset

SET ROLE id_a_desk;
SELECT loyalty.identity_set(:'m', 'resident_id', '44030119900307123x', '6222 0212 3456 7890');
-- shown as the last four only (since 1.2 an ID number is no lookup key)
SELECT full_name, id_number, bank_card FROM loyalty.frontdesk_lookup_phone('13700001111', '王');
SELECT loyalty.identity_matches(:'m', '４４０３０１１９９００３０７１２３ｘ') AS full_width_matches,
       loyalty.identity_matches(:'m', '440301199003071230') AS wrong_matches,
       loyalty.identity_matches(:'m2', '44030119900307123X') AS other_member_matches;
-- another member's ID number: the same answer as any other (no oracle);
-- HQ sees the clash
SELECT loyalty.identity_set(:'m2', 'resident_id', '44030119900307123X');
RESET ROLE;
SELECT kind, member_id = :'m2' AS new_member, other_member_id = :'m' AS holder, store_code
  FROM loyalty.identity_conflict;
SET ROLE id_a_desk;
-- bad input: no echo of the value, nothing written
SELECT loyalty.identity_set(:'m2', 'resident_id', 'abc');
SELECT loyalty.identity_set(:'m2', 'resident_id', NULL, '1234');
SELECT loyalty.identity_set(:'m2', 'driving_licence', '44030119900307999');
SELECT loyalty.identity_set(gen_random_uuid(), 'passport', 'E12345678');
SELECT loyalty.identity_matches(gen_random_uuid(), 'E12345678');
-- stores hold no privilege on the table or the decrypting function
SELECT count(*) FROM loyalty.member_identity;
SELECT loyalty._identity_open(:'m', 'id_number', '\x00'::bytea);
RESET ROLE;
SET ROLE id_a_house;
SELECT loyalty.identity_matches(:'m', '44030119900307123X');
RESET ROLE;
SELECT count(*) AS rows_for_m2 FROM loyalty.member_identity WHERE member_id = :'m2';

-- at rest: no plaintext, authenticated ciphertext bound to its member
SELECT id_type, id_number_last4, bank_card_last4,
       position(convert_to('44030119900307123X', 'UTF8') IN id_number_cipher) AS plaintext_at,
       length(id_number_cipher) AS sealed_length,
       length(id_number_index) AS index_length
  FROM loyalty.member_identity WHERE member_id = :'m';
SELECT loyalty._identity_open(:'m', 'id_number', id_number_cipher) AS opened
  FROM loyalty.member_identity WHERE member_id = :'m';
SELECT loyalty._identity_open(:'m2', 'id_number', id_number_cipher)
  FROM loyalty.member_identity WHERE member_id = :'m';
-- the key is in no setting (the loyalty.* settings hold budgets and the key
-- file's place, no key material)
SELECT count(*) AS settings_naming_keys FROM pg_settings
 WHERE (name LIKE '%loyalty%' AND name LIKE '%key%'
        AND name NOT IN ('loyalty.key_file', 'loyalty.key_file_in_datadir'))
    OR setting LIKE '%loyalty_keys%';
SELECT action, fields FROM loyalty.audit_member(:'m') ORDER BY 1, 2;

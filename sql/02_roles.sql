-- Stores, department roles and the caller's identity.
\set VERBOSITY default
\set SHOW_CONTEXT never

SELECT loyalty.store_create(gen_random_uuid()::text, 'szx', 'Shenzhen Bay', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'urc', 'Urumqi Tianshan', 'bay', 'west', 'Asia/Urumqi');
SELECT role, store_code, department FROM loyalty.staff_role ORDER BY 2 NULLS FIRST, 3;
-- each store role is a member of its department group
SELECT pg_has_role('loyalty_szx_frontdesk', 'loyalty_frontdesk', 'MEMBER') AS in_group;

-- bad input: a clear error and no store, no roles
SELECT loyalty.store_create(gen_random_uuid()::text, 'szx', 'Again', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'SZX', 'Upper', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'bad-code', 'Dash', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'waytoolongstorecode', 'Long', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'tz', 'Bad zone', 'bay', 'south', 'Mars/Olympus');
SELECT loyalty.store_create(gen_random_uuid()::text, 'tz', 'Abbrev zone', 'bay', 'south', 'CST');
SELECT loyalty.store_create(gen_random_uuid()::text, NULL, 'Null', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'e', '', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'l', repeat('名', 201), 'bay', 'south', 'Asia/Shanghai');
SELECT count(*) AS stores FROM loyalty.store;
SELECT count(*) AS stray_roles FROM pg_roles WHERE rolname ~ '^loyalty_(tz|e|l|bad)_';

-- staff logins
SELECT loyalty.staff_create(gen_random_uuid()::text, 'reg_alice', 'szx', 'frontdesk');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'reg_bob', 'urc', 'housekeeping');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'reg_carol', NULL, 'crm');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'reg_dave', NULL, 'frontdesk');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'reg_erin', 'szx', 'crm');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'reg_frank', 'nowhere', 'fnb');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'reg_gina', 'szx', 'janitor');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'reg_alice', 'szx', 'fnb');

-- identity comes from role membership
SELECT store_code, department, is_hq FROM loyalty.whoami();
SET ROLE reg_alice;
SELECT role, store_code, department, is_hq FROM loyalty.whoami();
SELECT loyalty.caller_store(), loyalty.caller_is_hq();
-- settings cannot change it
SET loyalty.store = 'urc';
SELECT loyalty.caller_store();
-- nor can a store role act as DBA or read base tables
SELECT loyalty.store_create(gen_random_uuid()::text, 'x', 'X', 'bay', 'south', 'Asia/Shanghai');
SELECT * FROM loyalty.member;
SELECT * FROM loyalty.staff_role;
RESET ROLE;
SET ROLE reg_carol;
SELECT role, store_code, department, is_hq FROM loyalty.whoami();
RESET ROLE;

-- inside SECURITY DEFINER functions the caller is still the outer user
CREATE FUNCTION public.definer_whoami() RETURNS text LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT current_user || ' acting for ' || coalesce(store_code, 'HQ') || '/' || department FROM loyalty.whoami() $$;
SET ROLE reg_bob;
SELECT current_user, public.definer_whoami();
RESET ROLE;
DROP FUNCTION public.definer_whoami();

-- membership changes are seen at once (cache invalidation)
GRANT loyalty_urc_fnb TO reg_alice;
SET ROLE reg_alice;
SELECT * FROM loyalty.whoami();
RESET ROLE;
REVOKE loyalty_urc_fnb FROM reg_alice;
SET ROLE reg_alice;
SELECT store_code, department FROM loyalty.whoami();
RESET ROLE;

-- a role that is no staff
CREATE ROLE reg_nobody;
SET ROLE reg_nobody;
SELECT * FROM loyalty.whoami();
RESET ROLE;
DROP ROLE reg_nobody;

-- enrolment: checks the caller's store and the input
SET ROLE reg_alice;
SELECT length(card_no) AS card_len, loyalty.card_number_valid(card_no) AS luhn_ok
  FROM loyalty.member_enroll(gen_random_uuid()::text, 'szx', '张三', '13812345678', 'zhang@example.com', '1990-05-01');
SELECT * FROM loyalty.member_enroll(gen_random_uuid()::text, 'urc', '李四');
SELECT * FROM loyalty.member_enroll(gen_random_uuid()::text, 'szx', '');
SELECT * FROM loyalty.member_enroll(gen_random_uuid()::text, 'szx', NULL);
SELECT * FROM loyalty.member_enroll(gen_random_uuid()::text, 'szx', repeat('x', 101));
SELECT * FROM loyalty.member_enroll(gen_random_uuid()::text, 'szx', 'Bad Phone', 'call me');
SELECT * FROM loyalty.member_enroll(gen_random_uuid()::text, 'szx', 'Bad Mail', NULL, 'no-at-sign');
SELECT * FROM loyalty.member_enroll(gen_random_uuid()::text, 'szx', 'Future', NULL, NULL, '2999-01-01');
SELECT * FROM loyalty.member_enroll(gen_random_uuid()::text, 'szx', 'Zone', NULL, NULL, NULL, NULL, NULL, 'Nowhere/City');
RESET ROLE;
SELECT * FROM loyalty.member_enroll(gen_random_uuid()::text, 'nowhere', 'Ghost');
SELECT count(*) AS members, count(p.*) AS profiles
  FROM loyalty.member m LEFT JOIN loyalty.member_profile p USING (member_id);

-- card numbers
SELECT loyalty.card_number_valid('123456789012') AS bad_check,
       loyalty.card_number_valid('12345678901x') AS not_digits,
       loyalty.card_number_valid('1') AS short;

DROP ROLE reg_alice, reg_bob, reg_carol;

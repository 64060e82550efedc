-- The demo chain: three stores in two time zones, staff logins for each
-- department, a few thousand generated members with preferences and stays.
-- Deterministic: the same data every time.
\set QUIET on
SELECT setseed(0.42) \gset

-- the database's key (ID numbers, bank cards, pseudonyms): the key file that
-- loyalty.key_file names, outside the data directory (docs/privacy.md)
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM loyalty.key_fingerprint) THEN
        PERFORM loyalty.key_create();
    END IF;
END
$$;

SELECT loyalty.store_create(gen_random_uuid()::text, 'szx', 'Shenzhen Bay Hotel', 'bay', 'south', 'Asia/Shanghai'),
       loyalty.store_create(gen_random_uuid()::text, 'sha', 'Shanghai Bund Hotel', 'bay', 'east', 'Asia/Shanghai'),
       loyalty.store_create(gen_random_uuid()::text, 'urc', 'Urumqi Tianshan Hotel', 'tianshan', 'west', 'Asia/Urumqi')
\gset

DO $$
DECLARE
    s text;
    d text;
BEGIN
    FOREACH s IN ARRAY ARRAY['szx', 'sha', 'urc'] LOOP
        FOREACH d IN ARRAY ARRAY['desk:frontdesk', 'house:housekeeping', 'fnb:fnb', 'mgr:store_manager'] LOOP
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = s || '_' || split_part(d, ':', 1)) THEN
                PERFORM loyalty.staff_create(gen_random_uuid()::text, s || '_' || split_part(d, ':', 1), s, split_part(d, ':', 2));
            END IF;
        END LOOP;
    END LOOP;
    FOREACH d IN ARRAY ARRAY['crm', 'marketing', 'bi', 'dba'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hq_' || d) THEN
            PERFORM loyalty.staff_create(gen_random_uuid()::text, 'hq_' || d, NULL, d);
        END IF;
    END LOOP;
END
$$;

-- members: Chinese and Latin names, phones, emails, birthdays; home stores
-- spread over the three stores; Urumqi members live in Asia/Urumqi.
CREATE TEMP TABLE demo_names AS
SELECT i,
       (ARRAY['王','李','张','刘','陈','杨','黄','赵','吴','周'])[1 + (i % 10)] ||
       (ARRAY['伟','芳','娜','敏','静','丽','强','磊','洋','艳','勇','军'])[1 + (i / 10 % 12)] AS full_name,
       (ARRAY['szx','sha','urc'])[1 + (i % 3)] AS home_store
  FROM generate_series(1, 3000) AS i;

SELECT count(*) AS enrolled FROM demo_names n,
  LATERAL loyalty.member_enroll(gen_random_uuid()::text, n.home_store, n.full_name,
      '13' || lpad((800000000 + n.i * 7919 % 100000000)::text, 9, '0'),
      'guest' || n.i || '@example.com',
      DATE '1960-01-01' + (n.i * 37 % 15000),
      (ARRAY['female','male'])[1 + n.i % 2], 'CN',
      CASE WHEN n.home_store = 'urc' THEN 'Asia/Urumqi' END) \gset

-- preferences recorded at one store, known chain-wide
INSERT INTO loyalty.member_preference (member_id, category, value, scope, store_code)
SELECT m.member_id,
       (ARRAY['pillow','floor','lighting','smoking','crib'])[1 + (row_number() OVER () % 5)::int],
       (ARRAY['no buckwheat pillow (allergy), down pillow','high floor','warm light','non-smoking','crib in room'])[1 + (row_number() OVER () % 5)::int],
       'chain', m.home_store
  FROM loyalty.member m
 WHERE random() < 0.4;

-- past stays, spread over 2025 and 2026
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, rooms, room_revenue, other_revenue)
SELECT m.member_id, s.store_code, d, d + n, 1, n * (400 + (random() * 600)::int), (random() * 300)::int
  FROM loyalty.member m
  CROSS JOIN LATERAL (SELECT (ARRAY['szx','sha','urc'])[1 + (random() * 2.99)::int] AS store_code) s
  CROSS JOIN LATERAL (SELECT DATE '2025-01-01' + (random() * 640)::int AS d, 1 + (random() * 3)::int AS n) t
 WHERE random() < 0.6;

\set QUIET off
\echo
\echo '== The chain: three stores in two time zones'
SELECT store_code, name, brand, region, time_zone FROM loyalty.store ORDER BY store_code;
\echo '== Members, preferences and stays'
SELECT (SELECT count(*) FROM loyalty.member) AS members,
       (SELECT count(*) FROM loyalty.member_preference) AS preferences,
       (SELECT count(*) FROM loyalty.stay) AS stays;
\echo '== Staff see themselves through role membership (connected as szx_desk)'
\set QUIET on
SET ROLE szx_desk;
\set QUIET off
SELECT login, role, store_code, department, is_hq FROM loyalty.whoami();
\set QUIET on
RESET ROLE;
\set QUIET off
\echo '== The policy in effect: tiers and the redemption rate'
SELECT t->>'code' AS tier, t->'qualify'->'any' AS qualifies_with_any_of, t->>'elite_bonus_percent' AS bonus_pct
  FROM jsonb_array_elements(loyalty.policy_at()->'tiers') t;
SELECT loyalty.policy_at()->'redemption'->'rate' AS redemption_rate;

-- pgTAP (issue 12.6): the BI row views are k-anonymous.  As the BI login,
-- every combination of the quasi-identifiers that bi_members, bi_stays and
-- bi_points publish, also joined on the pseudonymous key, is shared by at
-- least k members (k = loyalty.bi_k_anonymity, default 5); a smaller k
-- (set by a superuser) publishes more; the BI login cannot change k.
BEGIN;
SELECT plan(16);

SELECT loyalty.store_create(gen_random_uuid()::text, 'kaa', 'K-anon A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'kab', 'K-anon B', 'bay', 'east', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'ka_bi', NULL, 'bi');

-- 480 members over two stores, both genders, four decades of birth and
-- three years of enrolment, and three born in the 1940s, all with profiling
-- consent, stays in three months and points in three; some groups are
-- small on purpose (the three, the long stays)
CREATE TEMP TABLE km AS
SELECT n, (loyalty.member_enroll(gen_random_uuid()::text, CASE WHEN n % 7 = 0 AND n <= 480 THEN 'kab' ELSE 'kaa' END,
            '会员' || n, '1360000' || lpad(n::text, 4, '0'), NULL,
            CASE WHEN n > 480 THEN date '1945-06-01' ELSE date '1965-06-01' + (n % 4) * 3653 END)).member_id AS m
  FROM generate_series(1, 483) n;
UPDATE loyalty.member_profile p SET gender = CASE WHEN km.n % 2 = 0 AND km.n <= 480 THEN 'female' ELSE 'male' END
  FROM km WHERE p.member_id = km.m;
UPDATE loyalty.member x SET enrolled_at = timestamptz '2023-06-01' + (km.n % 480 / 160) * interval '1 year'
  FROM km WHERE x.member_id = km.m;
SELECT count(loyalty.consent_record(m, 'profiling', true, 'v1', 'kaa')) FROM km;
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, rooms, room_revenue, status)
SELECT m, CASE WHEN n % 6 = 0 THEN 'kab' ELSE 'kaa' END, date '2026-01-05' + (n % 3) * 31 * (1 - n / 481),
       date '2026-01-05' + (n % 3) * 31 * (1 - n / 481) + CASE WHEN n % 13 = 0 AND n <= 480 THEN 2 ELSE 1 END,
       1, 400 + n, 'checked_out'
  FROM km;
SELECT count(loyalty.points_accrue(gen_random_uuid()::text, m, 'kaa', 100 + n, 'stay', NULL, NULL,
             timestamptz '2026-02-10' + (n % 3) * interval '1 month')) FROM km;

-- the relations the BI login groups, as SQL run as the BI login itself:
-- this test's members, and the BI views joined on the key
CREATE TEMP TABLE src (name text PRIMARY KEY, body text);
INSERT INTO src VALUES
 ('mine', $$(SELECT * FROM loyalty.bi_members WHERE home_store IN ('kaa', 'kab'))$$),
 ('joined_stays', $$(SELECT b.member_key, b.home_store, b.tier, b.status AS member_status, b.gender,
        b.birth_decade, b.enrolled_year, s.store_code, s.stay_month, s.nights, s.rooms, s.status
   FROM loyalty.bi_members b JOIN loyalty.bi_stays s USING (member_key)
  WHERE b.home_store IN ('kaa', 'kab'))$$),
 ('joined_points', $$(SELECT b.member_key, b.home_store, b.tier, b.status AS member_status, b.gender,
        b.birth_decade, b.enrolled_year, p.store_code, p.brand, p.month, p.kind
   FROM loyalty.bi_members b JOIN loyalty.bi_points p USING (member_key)
  WHERE b.home_store IN ('kaa', 'kab'))$$),
 ('stays', $$(SELECT * FROM loyalty.bi_stays WHERE store_code IN ('kaa', 'kab'))$$);
GRANT SELECT ON src TO ka_bi;

-- smallest(query): the smallest group size a grouping gives, as the BI login
CREATE FUNCTION pg_temp.smallest(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    r bigint;
BEGIN
    SET LOCAL ROLE ka_bi;
    q := coalesce(regexp_replace(q, '\m(mine|joined_stays|joined_points|stays)\M',
                        (SELECT x.body || ' ' || x.name FROM src x WHERE x.name = substring(q from '\m(mine|joined_stays|joined_points|stays)\M'))), q);
    EXECUTE 'SELECT min(c) FROM (' || q || ') g(c)' INTO r;
    RESET ROLE;
    RETURN r;
END
$$;
-- every combination of quasi-identifiers: one query grouping by every
-- subset of the columns at once (CUBE), the smallest group of any of them
CREATE FUNCTION pg_temp.smallest_over_subsets(src text, cols text[], key text) RETURNS bigint
    LANGUAGE sql AS $$
    SELECT pg_temp.smallest(format('SELECT count(DISTINCT %s) FROM %s GROUP BY CUBE (%s)',
                                   key, src, array_to_string(cols, ', ')))
$$;

SELECT is(loyalty.bi_k(), 5, 'k is 5 by default');
SELECT cmp_ok(pg_temp.smallest('SELECT count(*) FROM mine'), '>', 0::bigint, 'bi_members publishes some of the members');
SELECT cmp_ok(pg_temp.smallest_over_subsets('mine',
          '{home_store,tier,status,gender,birth_decade,enrolled_year}', 'member_key'), '>=', 5::bigint,
    'bi_members: every combination of its quasi-identifiers has at least 5 members');
SELECT ok(pg_temp.smallest('SELECT count(*) FROM mine') < 483, 'members in groups smaller than 5 (the three born in the 1940s) are left out');

-- stays joined to members on the key: all quasi-identifiers side by side
SELECT cmp_ok(pg_temp.smallest('SELECT count(*) FROM joined_stays'), '>', 0::bigint, 'bi_stays publishes some stays');
SELECT cmp_ok(pg_temp.smallest_over_subsets('joined_stays',
          '{home_store,tier,member_status,gender,birth_decade,enrolled_year,store_code,stay_month,nights,rooms,status}',
          'member_key'), '>=', 5::bigint,
    'bi_stays joined with bi_members: every combination of the quasi-identifiers has at least 5 members');
SELECT is(pg_temp.smallest($$SELECT count(*) FROM loyalty.bi_stays s
                             WHERE s.store_code IN ('kaa', 'kab')
                               AND NOT EXISTS (SELECT 1 FROM loyalty.bi_members b WHERE b.member_key = s.member_key)$$),
          0::bigint, 'no stay of a member that bi_members leaves out');
SELECT cmp_ok(pg_temp.smallest_over_subsets('stays',
          '{store_code,stay_month,nights,rooms,status}', 'member_key'), '>=', 5::bigint,
    'bi_stays alone: every combination has at least 5 members');

SELECT cmp_ok(pg_temp.smallest('SELECT count(*) FROM joined_points'), '>', 0::bigint, 'bi_points publishes some rows');
SELECT cmp_ok(pg_temp.smallest_over_subsets('joined_points',
          '{home_store,tier,member_status,gender,birth_decade,enrolled_year,store_code,brand,month,kind}',
          'member_key'), '>=', 5::bigint,
    'bi_points joined with bi_members: every combination has at least 5 members');

-- a smaller k, set by a superuser, publishes more and still holds
CREATE TEMP TABLE at5 AS SELECT pg_temp.smallest('SELECT count(*) FROM mine') AS members,
    pg_temp.smallest('SELECT count(*) FROM joined_stays') AS stays;
SET LOCAL loyalty.bi_k_anonymity = 2;
SELECT is(loyalty.bi_k(), 2, 'k set to 2');
SELECT ok(pg_temp.smallest('SELECT count(*) FROM mine') > (SELECT members FROM at5)
          AND pg_temp.smallest('SELECT count(*) FROM joined_stays') > (SELECT stays FROM at5),
          'k = 2 publishes more members and stays');
SELECT cmp_ok(pg_temp.smallest_over_subsets('joined_stays',
          '{home_store,tier,member_status,gender,birth_decade,enrolled_year,store_code,stay_month,nights,rooms,status}',
          'member_key'), '>=', 2::bigint,
    'k = 2: every combination of bi_members and bi_stays has at least 2 members');
RESET loyalty.bi_k_anonymity;

-- the BI login cannot change k
SET LOCAL ROLE ka_bi;
SELECT throws_ok($$SET loyalty.bi_k_anonymity = 1$$, '42501', NULL, 'the BI login cannot lower k');
SELECT throws_ok($$SELECT set_config('loyalty.bi_k_anonymity', '1', true)$$, '42501', NULL, '... nor through set_config()');
SELECT is(loyalty.bi_k(), 5, 'k is still 5');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

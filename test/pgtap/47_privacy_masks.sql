-- pgTAP (issue 12.9): no mask shows more than a third of a value's
-- characters, whatever its length (1 to 40) and alphabet (ASCII digits and
-- letters, CJK, two-byte Latin, full-width digits).  Shown characters are
-- the ones that are not '*'.  (An 8-digit phone used to show 7 of 8.)
BEGIN;
SELECT plan(8);

CREATE TEMP TABLE v AS
SELECT n, a, string_agg(substr(a, 1 + (i % char_length(a)), 1), '' ORDER BY i) AS val
  FROM generate_series(1, 40) AS n,
       unnest(ARRAY['1386042795', 'janedoexyz', '张三丰欧阳娜李雷王', 'éàüøçñåßœæ', '１３８０４２７９５６']) AS a,
       generate_series(0, 39) AS i
 WHERE i < n
 GROUP BY n, a;
-- emails of 3 to 40 characters: local part, '@', domain with a dot
CREATE TEMP TABLE e AS
SELECT n, a, left(val, greatest(1, (n - 3) / 2)) || '@' || substr(val, 1, n - 3 - greatest(1, (n - 3) / 2)) || '.c' AS val
  FROM v WHERE n >= 4;
CREATE FUNCTION pg_temp.shown(t text) RETURNS int LANGUAGE sql IMMUTABLE
    RETURN char_length(replace(t, '*', ''));

SELECT is((SELECT count(*)::int FROM v), 200, 'the sample: 40 lengths x 5 alphabets');
SELECT is((SELECT count(*)::int FROM v WHERE pg_temp.shown(loyalty.mask_phone(val)) > char_length(val) / 3), 0,
          'mask_phone shows at most a third');
SELECT is((SELECT count(*)::int FROM v WHERE pg_temp.shown(loyalty.mask_last4(val)) > char_length(val) / 3), 0,
          'mask_last4 shows at most a third');
SELECT is((SELECT count(*)::int FROM v WHERE pg_temp.shown(loyalty.mask_name(val)) > char_length(val) / 3), 0,
          'mask_name shows at most a third');
SELECT is((SELECT count(*)::int FROM e WHERE pg_temp.shown(loyalty.mask_email(val)) > char_length(val) / 3), 0,
          'mask_email shows at most a third (the @ counted as shown)');
SELECT is((SELECT count(*)::int FROM v WHERE pg_temp.shown(loyalty.mask_full(val)) > 0), 0,
          'mask_full shows nothing');
-- and the masks still serve their purpose on real-sized values
SELECT is((SELECT string_agg(DISTINCT pg_temp.shown(loyalty.mask_phone(val))::text, ',')
             FROM v WHERE n = 11), '3', 'an 11-character phone shows its last 3');
SELECT is((SELECT string_agg(DISTINCT pg_temp.shown(loyalty.mask_last4(val))::text, ',')
             FROM v WHERE n >= 12), '4', 'a value of 12 or more characters shows its last 4');

SELECT * FROM finish();
ROLLBACK;

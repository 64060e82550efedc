-- Policy documents: validation with line, column and path; nothing stored
-- on error; the per-backend cache follows new versions.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- the shipped default is in effect
SELECT loyalty.policy_at() -> 'tiers' -> 2 ->> 'code' AS third_tier,
       loyalty.policy_at() -> 'redemption' -> 'rate' AS rate;

-- defaults are spelled out
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}]}') -> 'expiry';

-- unknown key, with its line and column
SELECT loyalty.policy_validate('{"version": 1,
  "tiers": [{"code": "member"},
            {"code": "silver", "qualify": {"any": {"nights": 10}}, "colour": "grey"}]}');
-- wrong types
SELECT loyalty.policy_validate('{"version": "1", "tiers": [{"code": "member"}]}');
SELECT loyalty.policy_validate('{"version": 1, "tiers": {"code": "member"}}');
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}], "earning": {"base_points_per_unit": 10.5}}');
-- tiers out of order, non-monotonic thresholds, duplicate codes
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}, {"code": "gold", "rank": 2, "qualify": {"any": {"nights": 40}}}]}');
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"},
  {"code": "gold", "qualify": {"any": {"nights": 40}}},
  {"code": "silver", "qualify": {"any": {"nights": 10}}}]}');
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}, {"code": "member", "qualify": {"any": {"nights": 1}}}]}');
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member", "qualify": {"any": {"nights": 1}}}]}');
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}, {"code": "silver"}]}');
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}, {"code": "silver", "qualify": {"any": {}}}]}');
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "Member"}]}');
-- negative and huge numbers
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}, {"code": "silver", "qualify": {"any": {"nights": -1}}}]}');
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}], "redemption": {"step_points": 99999999999}}');
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}], "earning": {"base_points_per_unit": 123456789012345678901234567890}}');
-- money: never floats, never more decimals than the currency has
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}], "redemption": {"rate": {"points": 1000, "amount": 100.5}}}');
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}], "redemption": {"rate": {"points": 1000, "amount": "100.005"}}}');
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}], "redemption": {"rate": {"points": 1000, "amount": "1e3"}}}');
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}], "redemption": {"minimum_points": 1050, "step_points": 100}}');
-- references: unknown tier
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}], "expiry": {"exempt_from_tier": "gold"}}');
-- enumerations
SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}], "qualification": {"period": "fortnight"}}');
-- malformed JSON, duplicate keys, deep nesting, empty and null input
SELECT loyalty.policy_validate('{"version": 1, "tiers": [}');
SELECT loyalty.policy_validate('{"version": 1, "version": 1, "tiers": [{"code": "member"}]}');
SELECT loyalty.policy_validate(repeat('[', 5000));
SELECT loyalty.policy_validate('');
SELECT loyalty.policy_validate(NULL);
SELECT loyalty.policy_validate('{"tiers": [{"code": "member"}]}');
-- invalid UTF-8 never reaches the parser: the server refuses it first
SELECT loyalty.policy_validate(convert_from('\xc328'::bytea, 'UTF8'));
-- oversized documents
SELECT loyalty.policy_validate('{"version": 1, "comment": "' || repeat('x', 1100000) || '", "tiers": [{"code": "member"}]}');

-- a failed policy_set stores nothing
SELECT count(*) AS versions_before FROM loyalty.policy;
SELECT loyalty.policy_set('{"version": 1, "tiers": []}');
INSERT INTO loyalty.policy (document) VALUES ('{"version": 2}');
SELECT count(*) AS versions_after FROM loyalty.policy;

-- a new version takes effect in this backend at once (cache invalidation)
BEGIN;
SELECT loyalty.policy_at() -> 'earning' ->> 'base_points_per_unit' AS rate_before;
SELECT loyalty.policy_set('{"version": 1, "tiers": [{"code": "member"}], "earning": {"base_points_per_unit": 12}}',
                          now() - interval '1 second', 'test') > 0 AS stored;
SELECT loyalty.policy_at() -> 'earning' ->> 'base_points_per_unit' AS rate_after;
-- the old version still answers for the past
SELECT loyalty.policy_at('2000-01-01') -> 'earning' ->> 'base_points_per_unit' AS rate_in_2000;
-- versions in effect are history: no update, no delete
SAVEPOINT s;
UPDATE loyalty.policy SET note = 'x' WHERE note = 'test';
ROLLBACK TO s;
DELETE FROM loyalty.policy WHERE effective_from = '-infinity';
ROLLBACK;
-- rolled back: the default is in effect again
SELECT loyalty.policy_at() -> 'earning' ->> 'base_points_per_unit' AS rate_after_rollback;
-- same effective time twice
SELECT loyalty.policy_set('{"version": 1, "tiers": [{"code": "member"}]}', '-infinity');
-- a future version can still be withdrawn
SELECT loyalty.policy_set('{"version": 1, "tiers": [{"code": "member"}]}', '2999-01-01') > 0 AS future_stored;
DELETE FROM loyalty.policy WHERE effective_from = '2999-01-01';
SELECT count(*) AS versions_at_end FROM loyalty.policy;

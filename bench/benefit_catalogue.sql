-- The benefit catalogue of the benches (bench/benefit_bench.sh,
-- bench/scale_bench.sh): the demo's benefits, plus a store benefit for each
-- of the 20 other stores o1..o20, which the including script has created.
SELECT loyalty.benefit_define(gen_random_uuid()::text, 'room_discount', 'Room rate discount', 'room_discount'),
       loyalty.benefit_define(gen_random_uuid()::text, 'breakfast', 'Free breakfast', 'breakfast'),
       loyalty.benefit_define(gen_random_uuid()::text, 'late_checkout', 'Late checkout', 'late_checkout'),
       loyalty.benefit_define(gen_random_uuid()::text, 'room_upgrade', 'Free room upgrade', 'room_upgrade'),
       loyalty.benefit_define(gen_random_uuid()::text, 'local_gift', 'Local specialty gift', 'gift');
SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'room_discount', 'tier', '{"percent": 10}', min_tier => 'silver');
SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'breakfast', 'tier', '{"count": 2}', min_tier => 'gold', use_limit => 1, limit_per => 'day');
SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'late_checkout', 'tier', '{"hour": 15}', min_tier => 'gold');
SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'late_checkout', 'tier', '{"hour": 16}', min_tier => 'platinum');
SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'room_upgrade', 'tier', '{}', min_tier => 'platinum', use_limit => 1, limit_per => 'stay');
SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'local_gift', 'store', '{"item": "Lychee gift box"}', stores => ARRAY['sza']);
SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'local_gift', 'store', jsonb_build_object('item', 'Gift of store o' || i), stores => ARRAY['o' || i])
  FROM generate_series(1, 20) i;

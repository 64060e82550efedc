-- pgTAP: every 1.1 spelling still works in 1.2 and gives the same answer as
-- its 1.2 name (issue 11).  A mutating pair is called with the same
-- idempotency key where the 1.1 function had one, so the second call
-- replays the first (same entry, stay, use); where it had none, both calls
-- do the same thing on like arguments.  Functions that need a store
-- replica, pg_cron or their own transaction fail the same way under both
-- names.  This is the only test that calls the deprecated names.
BEGIN;
SELECT plan(62);

-- the SQLSTATE a statement fails with, or 'ok'
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;

-- every deprecated function says so and names its replacement
SELECT is((SELECT count(*)::int FROM pg_catalog.pg_proc p
            WHERE p.pronamespace = 'loyalty'::regnamespace
              AND obj_description(p.oid, 'pg_proc') LIKE 'deprecated in 1.2: use loyalty.%; removed in 1.3'),
          44, 'the 44 deprecated functions are commented as such');
SELECT is((SELECT count(*)::int FROM pg_catalog.pg_proc p
            WHERE p.pronamespace = 'loyalty'::regnamespace
              AND obj_description(p.oid, 'pg_proc') LIKE 'deprecated in 1.2: use loyalty.%'
              AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc q
                               WHERE q.pronamespace = 'loyalty'::regnamespace
                                 AND q.proname = substring(obj_description(p.oid, 'pg_proc')
                                                           FROM 'use loyalty\.(\w+);'))),
          0, 'each names a function that exists');
SELECT is((SELECT count(*)::int FROM pg_catalog.pg_proc p
            WHERE p.pronamespace = 'loyalty'::regnamespace
              AND obj_description(p.oid, 'pg_proc') LIKE 'deprecated in 1.2:%' AND p.prosecdef),
          0, 'the wrappers run with the caller''s rights (the new functions check them)');

-- stores and staff
SELECT is(loyalty.create_store('depa', 'Deprecated A', 'bay', 'r', 'Asia/Shanghai'), 'depa', 'create_store');
SELECT is(loyalty.store_create('dep-s1', 'depb', 'Deprecated B', 'bay', 'r', 'Asia/Shanghai'), 'depb', 'store_create');
SELECT is(loyalty.store_create('dep-s1', 'depb', 'Deprecated B', 'bay', 'r', 'Asia/Shanghai'), 'depb',
          'store_create: a retry replays');
SELECT is(loyalty.create_staff('dep_login_a', 'depa', 'frontdesk'),
          'dep_login_a', 'create_staff');
SELECT is(loyalty.staff_create('dep-st1', 'dep_login_b', 'depb', 'frontdesk'),
          'dep_login_b', 'staff_create');
SELECT ok(pg_has_role('dep_login_a', 'loyalty_depa_frontdesk', 'MEMBER')
          AND pg_has_role('dep_login_b', 'loyalty_depb_frontdesk', 'MEMBER'),
          'both logins are members of their store''s front desk role');

-- members
CREATE TEMP TABLE m ON COMMIT DROP AS
    SELECT (SELECT member_id FROM loyalty.enroll('depa', 'Old Spelling', '13800000001')) AS a,
           (SELECT member_id FROM loyalty.member_enroll('dep-e1', 'depa', 'New Spelling', '13800000002')) AS b;
SELECT is((SELECT count(*)::int FROM loyalty.member_profile p, m WHERE p.member_id IN (m.a, m.b)), 2,
          'enroll and member_enroll both enrol');
SELECT is((SELECT member_id FROM loyalty.member_enroll('dep-e1', 'depa', 'New Spelling', '13800000002')),
          (SELECT b FROM m), 'member_enroll: a retry returns the first member');
SELECT ok(loyalty.card_number_valid(loyalty.new_card_number()) AND loyalty.card_number_valid(loyalty.card_number_new()),
          'new_card_number and card_number_new make valid card numbers');

-- the ledger: old spelling first, new spelling with the same key replays it
CREATE FUNCTION pg_temp.same(o loyalty.ledger_result, n loyalty.ledger_result) RETURNS boolean
    LANGUAGE sql AS $$
    SELECT o.entry_id IS NOT DISTINCT FROM n.entry_id AND o.lot_id IS NOT DISTINCT FROM n.lot_id
       AND o.operation = n.operation AND o.points IS NOT DISTINCT FROM n.points
       AND o.balance IS NOT DISTINCT FROM n.balance
       AND NOT o.replayed AND n.replayed
$$;
SELECT ok(pg_temp.same(loyalty.accrue((SELECT a FROM m), 'depa', 5000, 'adjustment', 'dep-l1'),
                       loyalty.points_accrue('dep-l1', (SELECT a FROM m), 'depa', 5000, 'adjustment')),
          'accrue = points_accrue');
SELECT ok(pg_temp.same(loyalty.accrue((SELECT a FROM m), 'depa', 300, 'stay', 'dep-l2', reference => 'stay-1', pending => true),
                       loyalty.points_accrue('dep-l2', (SELECT a FROM m), 'depa', 300, 'stay', reference => 'stay-1', pending => true)),
          'accrue = points_accrue (pending, named arguments)');
SELECT ok(pg_temp.same(loyalty.activate((SELECT a FROM m), 'depa', 'stay-1', 'dep-l3'),
                       loyalty.points_activate('dep-l3', (SELECT a FROM m), 'depa', 'stay-1')),
          'activate = points_activate');
SELECT ok(pg_temp.same(loyalty.redeem((SELECT a FROM m), 'depa', 1000, 'voucher', 'dep-l4'),
                       loyalty.points_redeem('dep-l4', (SELECT a FROM m), 'depa', 1000, 'voucher')),
          'redeem = points_redeem');
SELECT ok(pg_temp.same(loyalty.redeem_cash((SELECT a FROM m), 'depa', 100, 'dep-l5'),
                       loyalty.points_redeem_cash('dep-l5', (SELECT a FROM m), 'depa', 100)),
          'redeem_cash = points_redeem_cash');
SELECT ok(pg_temp.same(loyalty.transfer((SELECT a FROM m), (SELECT b FROM m), 'depa', 500, 'dep-l6'),
                       loyalty.points_transfer('dep-l6', (SELECT a FROM m), (SELECT b FROM m), 'depa', 500)),
          'transfer = points_transfer');
CREATE TEMP TABLE acc ON COMMIT DROP AS
    SELECT (loyalty.points_accrue('dep-l7', (SELECT b FROM m), 'depa', 1000, 'spend')).entry_id AS e;
SELECT ok(pg_temp.same(loyalty.reverse((SELECT e FROM acc), 'depa', 50, 100, 'dep-l8'),
                       loyalty.points_reverse('dep-l8', (SELECT e FROM acc), 'depa', 50, 100)),
          'reverse = points_reverse');
SELECT ok(pg_temp.same(loyalty.activate_due('dep-l9', now()), loyalty.points_activate_due('dep-l9', now())),
          'activate_due = points_activate_due');
SELECT ok(pg_temp.same(loyalty.expire_points('dep-l10', now()), loyalty.points_expire('dep-l10', now())),
          'expire_points = points_expire');
SELECT is(loyalty.balance((SELECT a FROM m)), loyalty.points_balance((SELECT a FROM m)), 'balance = points_balance');
SELECT ok(loyalty.points_balance((SELECT a FROM m)) > 0, 'the balance is the accrued points less the debits');
SELECT is(loyalty.balance_at((SELECT a FROM m), now()), loyalty.points_balance_at((SELECT a FROM m), now()),
          'balance_at = points_balance_at');
SELECT results_eq($$SELECT * FROM loyalty.member_ledger((SELECT a FROM m), 50)$$,
                  $$SELECT * FROM loyalty.points_ledger((SELECT a FROM m), 50)$$, 'member_ledger = points_ledger');
SELECT is(pg_temp.err('CALL loyalty.expire_points_batch()'), pg_temp.err('CALL loyalty.points_expire_batch()'),
          'expire_points_batch fails inside a transaction block as points_expire_batch does');
SELECT is(pg_temp.err('CALL loyalty.activate_due_batch()'), pg_temp.err('CALL loyalty.points_activate_due_batch()'),
          'activate_due_batch as points_activate_due_batch');

-- stays, charges, tiers
SELECT is((SELECT stay_id FROM loyalty.record_stay('dep-st-1', 'depa', (SELECT b FROM m), '2026-01-05', '2026-01-07', room_revenue => 800)),
          (SELECT stay_id FROM loyalty.stay_record('dep-st-1', 'depa', (SELECT b FROM m), '2026-01-05', '2026-01-07', room_revenue => 800)),
          'record_stay = stay_record (the same stay)');
SELECT is((SELECT charge_id FROM loyalty.record_charge('dep-ch-1', 'depa', (SELECT b FROM m), 120)),
          (SELECT charge_id FROM loyalty.charge_record('dep-ch-1', 'depa', (SELECT b FROM m), 120)),
          'record_charge = charge_record (the same charge)');
SELECT is((SELECT row(c.*)::text FROM loyalty.counters_at((SELECT b FROM m)) c),
          (SELECT row(c.*)::text FROM loyalty.tier_counters_at((SELECT b FROM m)) c), 'counters_at = tier_counters_at');
SELECT ok((SELECT nights FROM loyalty.tier_counters_at((SELECT b FROM m))) = 2, 'the stay counted two nights');

-- risk
SELECT is(loyalty.set_risk_type('dep_old', 'Old spelling', ARRAY['gift']), 'dep_old', 'set_risk_type');
SELECT is(loyalty.risk_type_set('dep-r0', 'dep_new', 'New spelling', ARRAY['gift']), 'dep_new', 'risk_type_set');
SELECT is((SELECT freezes FROM loyalty.risk_type WHERE risk_code = 'dep_old'),
          (SELECT freezes FROM loyalty.risk_type WHERE risk_code = 'dep_new'), 'the same risk types');
CREATE TEMP TABLE tag ON COMMIT DROP AS
    SELECT loyalty.raise_risk_tag((SELECT a FROM m), 'depa', 'dep_old', 'old spelling') AS o,
           loyalty.risk_tag_raise('dep-r1', (SELECT b FROM m), 'depa', 'dep_old', 'new spelling') AS n;
SELECT is((SELECT count(*)::int FROM loyalty.risk_tag t, tag WHERE t.tag_id IN (tag.o, tag.n) AND t.resolved_at IS NULL),
          2, 'raise_risk_tag and risk_tag_raise both raise');
SELECT is(loyalty.risk_tag_raise('dep-r1', (SELECT b FROM m), 'depa', 'dep_old', 'new spelling'),
          (SELECT n FROM tag), 'risk_tag_raise: a retry returns the first tag');
SELECT lives_ok($$SELECT loyalty.resolve_risk_tag((SELECT o FROM tag), 'waived', 'old')$$, 'resolve_risk_tag');
SELECT lives_ok($$SELECT loyalty.risk_tag_resolve('dep-r2', (SELECT n FROM tag), 'waived', 'new')$$, 'risk_tag_resolve');
SELECT is((SELECT array_agg(resolution) FROM loyalty.risk_tag t, tag WHERE t.tag_id IN (tag.o, tag.n)),
          ARRAY['waived', 'waived'], 'both resolved the same way');

-- benefits
SELECT is(loyalty.define_benefit('dep_old_b', 'Old', 'gift'), 'dep_old_b', 'define_benefit');
SELECT is(loyalty.benefit_define('dep-b1', 'dep_new_b', 'New', 'gift'), 'dep_new_b', 'benefit_define');
CREATE TEMP TABLE g ON COMMIT DROP AS
    SELECT (SELECT loyalty.grant_benefit('dep_old_b', 'store', '{"item": "tea"}', stores => ARRAY['depa'])) AS o,
           (SELECT loyalty.benefit_grant('dep-b2', 'dep_new_b', 'store', '{"item": "tea"}', stores => ARRAY['depa'])) AS n;
SELECT is((SELECT count(*)::int FROM loyalty.benefit_grant x, g WHERE x.grant_id IN (g.o, g.n) AND x.store_code = 'depa'),
          2, 'grant_benefit and benefit_grant both grant');
SELECT is((SELECT loyalty.benefit_grant('dep-b2', 'dep_new_b', 'store', '{"item": "tea"}', stores => ARRAY['depa'])),
          (SELECT n FROM g), 'benefit_grant: a retry returns the first grant');
SELECT is((SELECT use_id FROM loyalty.use_benefit((SELECT b FROM m), 'depa', 'dep_new_b', 'dep-u1')),
          (SELECT use_id FROM loyalty.benefit_use('dep-u1', (SELECT b FROM m), 'depa', 'dep_new_b')),
          'use_benefit = benefit_use (the same use)');
SELECT lives_ok($$SELECT loyalty.end_benefit_grant((SELECT o FROM g), now() + interval '1 day')$$, 'end_benefit_grant');
SELECT lives_ok($$SELECT loyalty.benefit_grant_end('dep-b3', (SELECT n FROM g), now() + interval '1 day')$$, 'benefit_grant_end');
SELECT is((SELECT count(DISTINCT valid_until)::int FROM loyalty.benefit_grant x, g WHERE x.grant_id IN (g.o, g.n)),
          1, 'both grants end at the same time');

-- replicas, store mode, schedules, views: the same outcome under both names
SELECT is(pg_temp.err($$SELECT loyalty.replica_add_store('nosuch')$$),
          pg_temp.err($$SELECT loyalty.replica_store_add('dep-x1', 'nosuch')$$), 'replica_add_store as replica_store_add');
SELECT is(pg_temp.err($$SELECT loyalty.replica_add_hub('Bad Hub')$$),
          pg_temp.err($$SELECT loyalty.replica_hub_add('dep-x2', 'Bad Hub')$$), 'replica_add_hub as replica_hub_add');
SELECT is(pg_temp.err($$SELECT loyalty.replica_remove_store('nosuch')$$),
          pg_temp.err($$SELECT loyalty.replica_store_remove('dep-x3', 'nosuch')$$), 'replica_remove_store as replica_store_remove');
SELECT is(pg_temp.err($$SELECT loyalty.replica_set_mode('nosuch', 'streaming')$$),
          pg_temp.err($$SELECT loyalty.replica_mode_set('dep-x4', 'nosuch', 'streaming')$$), 'replica_set_mode as replica_mode_set');
SELECT is(pg_temp.err($$SELECT loyalty.replica_set_offline_cap('nosuch', 10)$$),
          pg_temp.err($$SELECT loyalty.replica_offline_cap_set('dep-x5', 'nosuch', 10)$$), 'replica_set_offline_cap as replica_offline_cap_set');
SELECT is(pg_temp.err($$SELECT loyalty.replica_create_slot('nosuch')$$),
          pg_temp.err($$SELECT loyalty.replica_slot_create('nosuch')$$), 'replica_create_slot as replica_slot_create');
SELECT is(pg_temp.err($$SELECT loyalty.replica_attach_outbox('nosuch', 'host=nowhere')$$),
          pg_temp.err($$SELECT loyalty.replica_outbox_attach('dep-x6', 'nosuch', 'host=nowhere')$$), 'replica_attach_outbox as replica_outbox_attach');
SELECT is(pg_temp.err($$SELECT loyalty.store_accrue((SELECT a FROM m), 100)$$),
          pg_temp.err($$SELECT loyalty.store_points_accrue('dep-x7', (SELECT a FROM m), 100)$$), 'store_accrue as store_points_accrue (HQ is no store)');
SELECT is(pg_temp.err($$SELECT loyalty.store_redeem((SELECT a FROM m), 1000, 'voucher')$$),
          pg_temp.err($$SELECT loyalty.store_points_redeem('dep-x8', (SELECT a FROM m), 1000, 'voucher')$$), 'store_redeem as store_points_redeem');
SELECT is(pg_temp.err($$SELECT loyalty.store_record_preference((SELECT a FROM m), 'pillow', 'down')$$),
          pg_temp.err($$SELECT loyalty.store_preference_record('dep-x9', (SELECT a FROM m), 'pillow', 'down')$$), 'store_record_preference as store_preference_record');
SELECT is(pg_temp.err($$SELECT loyalty.store_raise_risk_tag((SELECT a FROM m), 'dep_old', 'n')$$),
          pg_temp.err($$SELECT loyalty.store_risk_tag_raise('dep-x10', (SELECT a FROM m), 'dep_old', 'n')$$), 'store_raise_risk_tag as store_risk_tag_raise');
SELECT is(pg_temp.err($$SELECT loyalty.store_use_benefit((SELECT a FROM m), 'dep_old_b')$$),
          pg_temp.err($$SELECT loyalty.store_benefit_use('dep-x11', (SELECT a FROM m), 'dep_old_b')$$), 'store_use_benefit as store_benefit_use');
SELECT is(loyalty.store_prune_outbox(), loyalty.store_outbox_prune('dep-x12'), 'store_prune_outbox = store_outbox_prune');
SELECT is(pg_temp.err($$SELECT * FROM loyalty.schedule_jobs()$$) || pg_temp.err($$SELECT loyalty.unschedule_jobs()$$)
              || pg_temp.err($$SELECT * FROM loyalty.scheduled_jobs()$$),
          pg_temp.err($$SELECT * FROM loyalty.job_schedule('dep-j1')$$) || pg_temp.err($$SELECT loyalty.job_unschedule('dep-j2')$$)
              || pg_temp.err($$SELECT * FROM loyalty.job_scheduled()$$),
          'schedule_jobs, unschedule_jobs, scheduled_jobs as job_schedule, job_unschedule, job_scheduled');
SELECT is(loyalty.regenerate_views(), loyalty.views_regenerate(), 'regenerate_views = views_regenerate');

SELECT * FROM finish();
ROLLBACK;

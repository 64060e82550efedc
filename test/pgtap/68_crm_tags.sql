-- pgTAP: behaviour tags and tentative preferences (docs/crm.md): normal
-- path (add, confirm, retire, replay), scope (chain, store), tentative
-- shown as such at another store, bad input with its SQLSTATE and nothing
-- written, and the rights of every department.
BEGIN;
SELECT plan(45);

CREATE FUNCTION pg_temp.as_role(r text, q text) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    res text;
BEGIN
    BEGIN
        EXECUTE format('SET LOCAL ROLE %I', r);
        EXECUTE q INTO res;
        RESET ROLE;
        RETURN coalesce(res, '<null>');
    EXCEPTION WHEN OTHERS THEN
        RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
    END;
END
$$;

SELECT loyalty.store_create('tg-s1', 'tga', 'Tag A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.store_create('tg-s2', 'tgb', 'Tag B', 'bay', 'east', 'Asia/Shanghai');
SELECT loyalty.staff_create('tg-1', 'tg_a_desk', 'tga', 'frontdesk');
SELECT loyalty.staff_create('tg-2', 'tg_a_mgr', 'tga', 'store_manager');
SELECT loyalty.staff_create('tg-3', 'tg_a_hk', 'tga', 'housekeeping');
SELECT loyalty.staff_create('tg-4', 'tg_a_fnb', 'tga', 'fnb');
SELECT loyalty.staff_create('tg-5', 'tg_b_desk', 'tgb', 'frontdesk');
SELECT loyalty.staff_create('tg-6', 'tg_b_hk', 'tgb', 'housekeeping');
SELECT loyalty.staff_create('tg-7', 'tg_crm', NULL, 'crm');
SELECT loyalty.staff_create('tg-8', 'tg_mkt', NULL, 'marketing');
SELECT loyalty.staff_create('tg-9', 'tg_bi', NULL, 'bi');
CREATE TEMP TABLE tm AS
SELECT (loyalty.member_enroll('tg-m1', 'tga', 'Tag Member', '13822223333')).member_id AS m;
CREATE TEMP TABLE tt (name text PRIMARY KEY, id uuid);
GRANT SELECT, INSERT ON tm, tt TO PUBLIC;

-- add: a chain-wide tentative tag at store A, a confirmed store-only one
SELECT ok(pg_temp.as_role('tg_a_desk', $$WITH x AS (INSERT INTO tt SELECT 'chain', loyalty.tag_add('tg-a1', (SELECT m FROM tm),
            'quiet_room', 'asked twice for a room away from the lift', tentative => true) RETURNING id)
            SELECT id::text FROM x$$) ~ '^[0-9a-f-]{36}$', 'front desk adds a tentative chain tag');
SELECT is((SELECT row(code, store_code, scope, tentative, confirmed_at IS NULL)::text FROM loyalty.member_tag
            WHERE tag_id = (SELECT id FROM tt WHERE name = 'chain')), '(quiet_room,tga,chain,t,t)',
          'recorded at the caller''s store, tentative, unconfirmed');
SELECT is(pg_temp.as_role('tg_a_desk', $$SELECT loyalty.tag_add('tg-a1', (SELECT m FROM tm), 'quiet_room',
            'asked twice for a room away from the lift', tentative => true)::text$$),
          (SELECT id::text FROM tt WHERE name = 'chain'), 'a retry returns the same tag');
SELECT is((SELECT count(*)::int FROM loyalty.member_tag WHERE member_id = (SELECT m FROM tm)), 1, 'and writes nothing more');
SELECT ok(pg_temp.as_role('tg_a_desk', $$SELECT loyalty.tag_add('tg-a1', (SELECT m FROM tm), 'late_arrival')::text$$)
          LIKE 'ERROR 22023%', 'the same key for another call: 22023');
SELECT ok(pg_temp.as_role('tg_a_mgr', $$WITH x AS (INSERT INTO tt SELECT 'store', loyalty.tag_add('tg-a2', (SELECT m FROM tm),
            'spa_regular', NULL, 'store') RETURNING id) SELECT id::text FROM x$$) ~ '^[0-9a-f-]{36}$',
          'store manager adds a store-only tag');
SELECT is((SELECT row(tentative, confirmed_at IS NOT NULL, confirmed_by)::text FROM loyalty.member_tag
            WHERE tag_id = (SELECT id FROM tt WHERE name = 'store')), '(f,t,tg_a_mgr)', 'a tag added as confirmed is confirmed by its author');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox WHERE kind = 'member_tagged' AND member_id = (SELECT m FROM tm)), 2,
          'one member_tagged event per tag');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox WHERE kind = 'member_tagged' AND member_id = (SELECT m FROM tm)
            AND payload ? 'note'), 0, 'events carry no note');
SELECT is((SELECT count(*)::int FROM (SELECT member_id, action FROM loyalty.audit_log UNION ALL
            SELECT member_id, action FROM loyalty.audit_change_staging) a WHERE member_id = (SELECT m FROM tm) AND action = 'tag_add'), 2,
          'every add is audited');

-- reach (issue 12.1): store B lists no tag of A's member until the member
-- has a booking at B
SELECT is(pg_temp.as_role('tg_b_desk', $$SELECT count(*)::text FROM loyalty.member_tags WHERE member_id = (SELECT m FROM tm)$$),
          '0', 'store B: no tag of a member out of its reach');
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, status)
SELECT m, 'tgb', current_date + 30, current_date + 31, 'booked' FROM tm;
-- visibility: store B sees the chain tag as tentative, without the note, and not the store-only tag
SELECT is(pg_temp.as_role('tg_b_desk', $$SELECT string_agg(code || ':' || tentative || ':' || coalesce(note, '-'), ',')
            FROM loyalty.member_tags WHERE member_id = (SELECT m FROM tm)$$), 'quiet_room:true:-',
          'store B: the chain tag, tentative, no note; not the store-only tag');
SELECT is(pg_temp.as_role('tg_a_desk', $$SELECT count(*)::text FROM loyalty.member_tags WHERE member_id = (SELECT m FROM tm)
            AND note IS NOT NULL$$), '1', 'store A sees its note');
SELECT is(pg_temp.as_role('tg_crm', $$SELECT count(*)::text FROM loyalty.member_tags WHERE member_id = (SELECT m FROM tm)$$),
          '2', 'HQ CRM sees both');
SELECT ok(pg_temp.as_role('tg_b_hk', $$SELECT count(*)::text FROM loyalty.member_tags$$) LIKE 'ERROR 42501%',
          'housekeeping does not see behaviour tags');
SELECT ok(pg_temp.as_role('tg_bi', $$SELECT count(*)::text FROM loyalty.member_tags$$) LIKE 'ERROR 42501%', 'BI: no access');

-- confirm: store B sees it again and confirms it
SELECT is(pg_temp.as_role('tg_b_desk', $$SELECT loyalty.tag_confirm('tg-b1', (SELECT id FROM tt WHERE name = 'chain'))::text$$),
          '', 'store B confirms the chain tag');
SELECT is((SELECT row(tentative, confirmed_by)::text FROM loyalty.member_tag WHERE tag_id = (SELECT id FROM tt WHERE name = 'chain')),
          '(f,tg_b_desk)', 'confirmed, by whom');
SELECT is(pg_temp.as_role('tg_b_desk', $$SELECT loyalty.tag_confirm('tg-b1', (SELECT id FROM tt WHERE name = 'chain'))::text$$),
          '', 'a retry of the confirmation is a no-op');
SELECT ok(pg_temp.as_role('tg_b_desk', $$SELECT loyalty.tag_confirm('tg-b2', (SELECT id FROM tt WHERE name = 'chain'))::text$$)
          LIKE 'ERROR 55000%already confirmed%', 'confirming again with a new key: 55000');
SELECT ok(pg_temp.as_role('tg_b_desk', $$SELECT loyalty.tag_confirm('tg-b3', (SELECT id FROM tt WHERE name = 'store'))::text$$)
          LIKE 'ERROR P0002%', 'another store''s store-only tag is not found (P0002)');

-- retire: only the tagging store or HQ
SELECT ok(pg_temp.as_role('tg_b_desk', $$SELECT loyalty.tag_retire('tg-b4', (SELECT id FROM tt WHERE name = 'chain'))::text$$)
          LIKE 'ERROR 42501%', 'store B may not retire store A''s tag (42501)');
SELECT is((SELECT retired_at IS NULL FROM loyalty.member_tag WHERE tag_id = (SELECT id FROM tt WHERE name = 'chain')), true,
          'and it stays live');
SELECT is(pg_temp.as_role('tg_a_desk', $$SELECT loyalty.tag_retire('tg-a3', (SELECT id FROM tt WHERE name = 'chain'))::text$$),
          '', 'store A retires its tag');
SELECT is((SELECT retired_by::text FROM loyalty.member_tag WHERE tag_id = (SELECT id FROM tt WHERE name = 'chain')),
          'tg_a_desk', 'retired, by whom');
SELECT ok(pg_temp.as_role('tg_crm', $$SELECT loyalty.tag_retire('tg-c1', (SELECT id FROM tt WHERE name = 'chain'))::text$$)
          LIKE 'ERROR 55000%retired%', 'retiring a retired tag: 55000');
SELECT is(pg_temp.as_role('tg_crm', $$SELECT loyalty.tag_retire('tg-c2', (SELECT id FROM tt WHERE name = 'store'))::text$$),
          '', 'HQ CRM retires any tag');

-- bad input: SQLSTATE, nothing written
CREATE TEMP TABLE before_bad AS SELECT count(*) AS n FROM loyalty.member_tag;
GRANT SELECT ON before_bad TO PUBLIC;
SELECT ok(pg_temp.as_role('tg_a_desk', $$SELECT loyalty.tag_add('tg-x1', (SELECT m FROM tm), 'Bad Code')::text$$)
          LIKE 'ERROR 22023%invalid tag code%', 'bad code: 22023');
SELECT ok(pg_temp.as_role('tg_a_desk', $$SELECT loyalty.tag_add('tg-x2', (SELECT m FROM tm), 'ok_code', scope => 'region')::text$$)
          LIKE 'ERROR 22023%scope%', 'bad scope: 22023');
SELECT ok(pg_temp.as_role('tg_a_desk', $$SELECT loyalty.tag_add('tg-x3', (SELECT m FROM tm), 'ok_code', repeat('x', 1001))::text$$)
          LIKE 'ERROR 22001%', 'note too long: 22001');
SELECT ok(pg_temp.as_role('tg_a_desk', $$SELECT loyalty.tag_add('tg-x4', NULL, 'ok_code')::text$$)
          LIKE 'ERROR 22004%', 'null member: 22004');
SELECT ok(pg_temp.as_role('tg_a_desk', $$SELECT loyalty.tag_add(NULL, (SELECT m FROM tm), 'ok_code')::text$$)
          LIKE 'ERROR 22004%idempotency_key%', 'null key: 22004');
SELECT ok(pg_temp.as_role('tg_a_desk', $$SELECT loyalty.tag_add('tg-x5', gen_random_uuid(), 'ok_code')::text$$)
          LIKE 'ERROR P0002%', 'unknown member: P0002');
SELECT ok(pg_temp.as_role('tg_crm', $$SELECT loyalty.tag_add('tg-x6', (SELECT m FROM tm), 'ok_code', scope => 'store')::text$$)
          LIKE 'ERROR 22004%store_code%', 'HQ store-only tag without a store: 22004');
SELECT ok(pg_temp.as_role('tg_a_desk', $$SELECT loyalty.tag_add('tg-x7', (SELECT m FROM tm), 'ok_code', store_code => 'tgb')::text$$)
          LIKE 'ERROR 42501%', 'a store tags for itself only: 42501');
SELECT is((SELECT count(*) FROM loyalty.member_tag), (SELECT n FROM before_bad), 'no bad call wrote a tag');
SELECT ok(pg_temp.as_role('tg_a_hk', $$SELECT loyalty.tag_add('tg-x8', (SELECT m FROM tm), 'ok_code')::text$$)
          LIKE 'ERROR 42501%', 'housekeeping may not tag');
SELECT ok(pg_temp.as_role('tg_mkt', $$SELECT loyalty.tag_add('tg-x9', (SELECT m FROM tm), 'ok_code')::text$$)
          LIKE 'ERROR 42501%', 'marketing may not tag');

-- tentative preferences: a one-off request at store A, seen as tentative by store B's housekeeping
-- (the guest has a booking at store B, so store B's staff reach the member, docs/privacy.md)
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, status)
VALUES ((SELECT m FROM tm), 'tgb', '2026-12-01', '2026-12-02', 'booked');
SELECT ok(pg_temp.as_role('tg_a_hk', $$WITH x AS (INSERT INTO tt SELECT 'pref', loyalty.preference_tentative_add('tg-p1',
            (SELECT m FROM tm), 'lighting', 'warmer light') RETURNING id) SELECT id::text FROM x$$) ~ '^[0-9a-f-]{36}$',
          'housekeeping records a one-off request as tentative');
SELECT is(pg_temp.as_role('tg_b_hk', $$SELECT string_agg(value || ':' || tentative, ',') FROM loyalty.preferences((SELECT m FROM tm))$$),
          'warmer light:true', 'store B sees it, as tentative');
SELECT is(pg_temp.as_role('tg_a_hk', $$SELECT loyalty.preference_tentative_add('tg-p1', (SELECT m FROM tm), 'lighting', 'warmer light')::text$$),
          (SELECT id::text FROM tt WHERE name = 'pref'), 'a retry returns the same preference');
SELECT ok(pg_temp.as_role('tg_a_hk', $$SELECT loyalty.preference_tentative_add('tg-p2', (SELECT m FROM tm), 'mood', 'x')::text$$)
          LIKE 'ERROR 22023%', 'bad category: 22023 (preference_add''s rules)');
SELECT is((SELECT count(*)::int FROM loyalty.member_preference WHERE member_id = (SELECT m FROM tm)), 1, 'one preference written');
SELECT is(pg_temp.as_role('tg_b_hk', $$SELECT loyalty.preference_confirm('tg-p3', (SELECT id FROM tt WHERE name = 'pref'))::text$$),
          '', 'store B confirms it on the next stay');
SELECT ok(pg_temp.as_role('tg_b_hk', $$SELECT loyalty.preference_confirm('tg-p4', (SELECT id FROM tt WHERE name = 'pref'))::text$$)
          LIKE 'ERROR 55000%', 'confirming again: 55000');

SELECT * FROM finish();
ROLLBACK;

#!/usr/bin/env bash
# Tier engine benchmark (docs/tiers.md, "Performance").
#
#  1. Stays per second through the full path (loyalty.stay_record: stay row,
#     earning lines, ledger lots, counters, tier check) against the ledger
#     floor measured in the same run: loyalty.points_accrue of the same points, one
#     call per transaction.  pgbench, fsync on; TIER_ROUNDS (3) rounds of
#     the stays then the floor, medians and each round's ratio.
#  2. Requalification of TIER_MEMBERS members with TIER_MONTHS counter rows
#     each (default 10,000 x 10; the full size is 1,000,000 x 10 = 10,000,000
#     rows): CALL loyalty.tier_requalify() against the best plain set-based
#     SQL for the same result (one UPDATE computing every member's tier from
#     the counters, with the history and outbox rows), on identical data,
#     side by side; then the steady-state run (nothing to change) of each.
#     TIER_RQ_ROUNDS (1) alternating rounds of both (data reset before each
#     first run), medians of each and of the rounds' ratios.
#
#   bench/tier_bench.sh                         small, about a minute
#   TIER_MEMBERS=1000000 bench/tier_bench.sh    full size
#   BENCH_SECONDS=30 TIER_CLIENTS=2 TIER_RQ_ROUNDS=3 ...
#   TIER_SYNC_COMMIT=off ...  both stay sides without waiting for the WAL
#                             flush (the CPU cost, not the disk's latency)
#
# Prints lines "name value" and the ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

as_unprivileged_copy "BENCH_SECONDS TIER_MEMBERS TIER_MONTHS TIER_CLIENTS TIER_ROUNDS TIER_RQ_ROUNDS TIER_SYNC_COMMIT" bench/tier_bench.sh

secs=${BENCH_SECONDS:-10}
members=${TIER_MEMBERS:-10000}
months=${TIER_MONTHS:-10}
clients=${TIER_CLIENTS:-2}
work=$(mktemp -d /tmp/loyalty-tierbenchrun.XXXXXX)
trap 'stop_server "$work/data"; rm -rf "$work"' EXIT
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$work/sock" PGPORT=54392 PGUSER=postgres PGDATABASE=bench
start_server "$work/data" "$PGHOST" "$PGPORT" "shared_buffers = 1GB" "max_wal_size = 8GB" \
    "synchronous_commit = on" "work_mem = 64MB" "maintenance_work_mem = 512MB"
psql -q -X -d postgres -c 'CREATE DATABASE bench'
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

q <<'SQL'
CREATE EXTENSION loyalty;
SELECT loyalty.store_create(gen_random_uuid()::text, 'bsz', 'Bench Shenzhen', 'bay', 'south', 'Asia/Shanghai'),
       loyalty.store_create(gen_random_uuid()::text, 'bur', 'Bench Urumqi', 'tianshan', 'west', 'Asia/Urumqi');
-- 1,000 members for the stay benchmark
CREATE TABLE stay_member AS
  SELECT i, (loyalty.member_enroll(gen_random_uuid()::text, CASE WHEN i % 2 = 0 THEN 'bsz' ELSE 'bur' END, 'Stay ' || i)).member_id
    FROM generate_series(0, 999) i;
ALTER TABLE stay_member ADD PRIMARY KEY (i);
CREATE SEQUENCE stay_seq;
VACUUM ANALYZE;
SQL

# full path: one-night stays, each member's nights consecutive (stays merge
# when they meet at one store), 800.00 CNY of room revenue each
cat >"$work/stay.sql" <<'EOF2'
SELECT nextval('stay_seq') AS k \gset
SELECT stay_id FROM loyalty.stay_record('b' || :k, CASE WHEN :k % 3 = 0 THEN 'bur' ELSE 'bsz' END,
    (SELECT member_id FROM stay_member WHERE i = :k % 1000),
    DATE '2024-01-01' + (:k / 1000)::int, DATE '2024-01-02' + (:k / 1000)::int, 1, 800.00, 0,
    occurred_at => timestamptz '2024-01-02 12:00+08' + ((:k / 1000)::int) * interval '1 day');
EOF2
# the floor: the same points straight to the ledger, one call per transaction
cat >"$work/floor.sql" <<'EOF2'
SELECT nextval('stay_seq') AS k \gset
SELECT (loyalty.points_accrue('f' || :k, (SELECT member_id FROM stay_member WHERE i = :k % 1000), 'bsz', 8000, 'stay')).points;
EOF2
tps() { PGOPTIONS="-c synchronous_commit=${TIER_SYNC_COMMIT:-on}" pgbench -n -c "$clients" -j "$clients" -T "$secs" -f "$1" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
# TIER_ROUNDS rounds of the stays then the floor, one right after the other
# (the machine is shared); medians of each and of the rounds' ratios
rounds=${TIER_ROUNDS:-3}
med() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
stays="" floors="" ratios=""
for _ in $(seq 1 "$rounds"); do
    s=$(tps "$work/stay.sql")
    f=$(tps "$work/floor.sql")
    stays="$stays $s" floors="$floors $f" ratios="$ratios $(echo "scale=3; $s / $f" | bc)"
done
# shellcheck disable=SC2086
{
    echo "stays_per_second_full_path $(med $stays) (median of $rounds rounds:$stays)"
    echo "ledger_accrue_floor_tps $(med $floors) (median of $rounds rounds:$floors)"
    echo "stay_to_floor_ratio $(med $ratios) (median of $rounds rounds:$ratios)"
}

# requalification data: $members members, $months counter months each in
# the current year; about a third reach silver, a few percent gold
q -v members="$members" -v months="$months" <<'SQL'
-- random card numbers may collide: skip those and top up
INSERT INTO loyalty.member (card_no, home_store, enrolled_at)
SELECT loyalty.card_number_new(), CASE WHEN i % 2 = 0 THEN 'bsz' ELSE 'bur' END, '2020-01-01'
  FROM generate_series(1, :members) i ON CONFLICT DO NOTHING;
INSERT INTO loyalty.member (card_no, home_store, enrolled_at)
SELECT loyalty.card_number_new(), CASE WHEN i % 2 = 0 THEN 'bsz' ELSE 'bur' END, '2020-01-01'
  FROM generate_series(1, :members + 1000 - (SELECT count(*) FROM loyalty.member)) i ON CONFLICT DO NOTHING;
INSERT INTO loyalty.tier_counter (member_id, month, nights, stays, base_points, qualifying_spend)
SELECT m.member_id, make_date(extract(year FROM now())::int, mo, 1),
       CASE WHEN h & 8 = 0 THEN h & 7 ELSE 0 END, (h & 48 = 0)::int, (h >> 6) & 4095, 0
  FROM loyalty.member m CROSS JOIN generate_series(1, :months) mo
  CROSS JOIN LATERAL (SELECT hashint8(mo::int8 * 7919 + ('x' || substr(m.member_id::text, 1, 8))::bit(32)::int) AS h) x
 WHERE NOT EXISTS (SELECT 1 FROM stay_member s WHERE s.member_id = m.member_id);
VACUUM ANALYZE;
CREATE TABLE bench_snapshot AS SELECT member_id, tier, tier_valid_until FROM loyalty.member;
SQL
echo "requalify_members $(q -At -c 'SELECT count(*) FROM loyalty.member')"
echo "requalify_counter_rows $(q -At -c 'SELECT count(*) FROM loyalty.tier_counter')"

# the set-based SQL: every member's tier from its calendar-year counters
# (member time zone), with the thresholds of the policy in effect, upgrades
# and validity extensions written with their history and outbox rows
cat >"$work/setbased.sql" <<'EOF2'
WITH pol AS (
  SELECT (t ->> 'rank')::int AS rank, t ->> 'code' AS code,
         coalesce((t -> 'qualify' -> 'any' ->> 'nights')::bigint, -1) AS n,
         coalesce((t -> 'qualify' -> 'any' ->> 'stays')::bigint, -1) AS s,
         coalesce((t -> 'qualify' -> 'any' ->> 'base_points')::bigint, -1) AS b
    FROM jsonb_array_elements(loyalty.policy_at(now()) -> 'tiers') t),
mt AS (
  SELECT m.member_id, m.tier, m.tier_valid_until, coalesce(m.time_zone, s.time_zone) AS tz,
         date_trunc('year', now() AT TIME ZONE coalesce(m.time_zone, s.time_zone))::date AS ps
    FROM loyalty.member m JOIN loyalty.store s ON s.store_code = m.home_store
   WHERE m.status = 'active'),
agg AS (
  SELECT mt.member_id, mt.tier, mt.tier_valid_until, mt.tz, mt.ps,
         sum(c.nights) AS n, sum(c.stays) AS s, sum(c.base_points) AS b
    FROM mt JOIN loyalty.tier_counter c ON c.member_id = mt.member_id
     AND c.month >= mt.ps AND c.month < mt.ps + interval '1 year'
   GROUP BY 1, 2, 3, 4, 5),
qual AS (
  SELECT a.*, (SELECT p.code FROM pol p WHERE p.rank > 0 AND ((p.n >= 0 AND a.n >= p.n) OR (p.s >= 0 AND a.s >= p.s)
                 OR (p.b >= 0 AND a.b >= p.b)) ORDER BY p.rank DESC LIMIT 1) AS q,
         make_timestamptz(extract(year FROM a.ps)::int + 2, 4, 1, 0, 0, 0, a.tz) AS until
    FROM agg a),
ch AS (
  UPDATE loyalty.member m SET tier = qual.q, tier_valid_until = qual.until, updated_at = now()
    FROM qual, pol pq, pol pc
   WHERE m.member_id = qual.member_id AND qual.q IS NOT NULL AND pq.code = qual.q AND pc.code = qual.tier
     AND (pq.rank > pc.rank OR (pq.rank = pc.rank AND qual.until > qual.tier_valid_until))
  RETURNING m.member_id, qual.tier AS old_tier, qual.q AS new_tier, qual.tier_valid_until AS old_until, qual.until),
hist AS (
  INSERT INTO loyalty.tier_history (member_id, old_tier, new_tier, old_valid_until, valid_until, reason)
  SELECT member_id, old_tier, new_tier, old_until, until, 'qualified (set-based)' FROM ch
  RETURNING event_id, member_id, old_tier, new_tier, valid_until)
INSERT INTO loyalty.event_outbox (kind, member_id, payload)
SELECT 'tier_changed', member_id, jsonb_build_object('history_id', event_id, 'member_id', member_id,
       'old_tier', old_tier, 'new_tier', new_tier, 'valid_until', valid_until)
  FROM hist;
EOF2

reset_tiers() {
    q <<'SQL'
UPDATE loyalty.member m SET tier = b.tier, tier_valid_until = b.tier_valid_until
  FROM bench_snapshot b WHERE b.member_id = m.member_id AND (m.tier, m.tier_valid_until) IS DISTINCT FROM (b.tier, b.tier_valid_until);
DELETE FROM loyalty.tier_history;
DELETE FROM loyalty.event_outbox;
VACUUM ANALYZE loyalty.member, loyalty.tier_history, loyalty.event_outbox;
CHECKPOINT;
SQL
}
seconds() {  # run a SQL file or command, print elapsed seconds
    local t0 t1
    t0=$(date +%s.%N)
    q "$@" >/dev/null
    t1=$(date +%s.%N)
    echo "scale=2; ($t1 - $t0) / 1" | bc
}
rq_rounds=${TIER_RQ_ROUNDS:-1}
c_firsts="" s_firsts="" c_agains="" s_agains="" r_first="" r_again=""
for _ in $(seq 1 "$rq_rounds"); do
    reset_tiers
    q -c 'DROP TABLE IF EXISTS c_result' >/dev/null
    c_first=$(seconds -c 'CALL loyalty.tier_requalify(now(), 5000)')
    c_changed=$(q -At -c 'SELECT count(*) FROM loyalty.tier_history')
    c_tiers=$(q -At -c "SELECT string_agg(tier || '=' || n, ' ' ORDER BY tier) FROM (SELECT tier, count(*) n FROM loyalty.member GROUP BY tier) x")
    c_again=$(seconds -c 'CALL loyalty.tier_requalify(now(), 5000)')
    q -c 'CREATE TABLE c_result AS SELECT member_id, tier FROM loyalty.member'
    reset_tiers
    s_first=$(seconds -f "$work/setbased.sql")
    s_changed=$(q -At -c 'SELECT count(*) FROM loyalty.tier_history')
    s_tiers=$(q -At -c "SELECT string_agg(tier || '=' || n, ' ' ORDER BY tier) FROM (SELECT tier, count(*) n FROM loyalty.member GROUP BY tier) x")
    s_again=$(seconds -f "$work/setbased.sql")
    c_firsts="$c_firsts $c_first" s_firsts="$s_firsts $s_first"
    c_agains="$c_agains $c_again" s_agains="$s_agains $s_again"
    r_first="$r_first $(echo "scale=2; $c_first / $s_first" | bc)"
    r_again="$r_again $(echo "scale=2; $c_again / $s_again" | bc)"
done
# shellcheck disable=SC2086
{
    echo "requalify_c_seconds $(med $c_firsts) (rounds:$c_firsts; last: changed $c_changed: $c_tiers)"
    echo "requalify_setbased_seconds $(med $s_firsts) (rounds:$s_firsts; last: changed $s_changed: $s_tiers)"
    echo "requalify_c_to_setbased_time_ratio $(med $r_first) (rounds:$r_first)"
    echo "requalify_c_steady_seconds $(med $c_agains) (rounds:$c_agains)"
    echo "requalify_setbased_steady_seconds $(med $s_agains) (rounds:$s_agains)"
    echo "requalify_steady_time_ratio $(med $r_again) (rounds:$r_again)"
}
[ "$c_tiers" = "$s_tiers" ] && echo "same_result yes" || echo "same_result NO"
# members whose tier differs, with their counters (the set-based SQL does
# not apply ended validity: members whose tier expired differ by design)
q -P pager=off -c "SELECT count(*) AS differing_members,
       count(*) FILTER (WHERE b.tier_valid_until <= now()) AS of_which_validity_ended
  FROM c_result c JOIN loyalty.member m USING (member_id) JOIN bench_snapshot b USING (member_id)
 WHERE c.tier <> m.tier"
q -P pager=off -c "SELECT c.tier AS c_tier, m.tier AS sql_tier, b.tier AS before, b.tier_valid_until,
       (SELECT sum(nights) FROM loyalty.tier_counter t WHERE t.member_id = c.member_id
           AND t.month >= date_trunc('year', now())) AS nights_this_year
  FROM c_result c JOIN loyalty.member m USING (member_id) JOIN bench_snapshot b USING (member_id)
 WHERE c.tier <> m.tier AND NOT coalesce(b.tier_valid_until <= now(), false) LIMIT 5"

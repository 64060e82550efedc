#!/usr/bin/env bash
# Score and segment refresh benchmark (docs/segments.md, docs/performance.md).
#
#  1. Scores: CALL loyalty.score_refresh() (C per batch of members, bins
#     set-based at the end, committed batches with progress) against the
#     plain set-based SQL a user would write for the same result: one
#     INSERT ... SELECT grouping every member's stays, with the consent
#     check inlined and the bins as window functions, into a table shaped
#     like loyalty.member_score.  Same data, same as_of, measured in the
#     same run, SEG_ROUNDS rounds (default 2) alternating the two; the
#     results are compared row by row.
#  2. Segments: CALL loyalty.segment_refresh() for three segments against
#     three hand-written INSERT ... SELECT statements with the same
#     conditions over the same score run; results compared.
#  3. The finance views on the same data: finance_liability and
#     finance_reconciliation (one lot and one accrual entry per stay, a
#     tenth of them expired and a fifth redeemed).
#
#   bench/segment_bench.sh                             small: 20,000 members x 10 stays
#   SEG_MEMBERS=1000000 bench/segment_bench.sh         full size: 1,000,000 x 10 = 10,000,000 stays
#   SEG_STAYS_PER_MEMBER=10 SEG_BATCH=5000 SEG_ROUNDS=2
#
# Prints lines "name value" and the ratios (C time / SQL time).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

as_unprivileged_copy "SEG_MEMBERS SEG_STAYS_PER_MEMBER SEG_BATCH SEG_ROUNDS" bench/segment_bench.sh

members=${SEG_MEMBERS:-20000}
per=${SEG_STAYS_PER_MEMBER:-10}
batch=${SEG_BATCH:-5000}
rounds=${SEG_ROUNDS:-2}
work=$(mktemp -d /tmp/loyalty-segbenchrun.XXXXXX)
trap 'stop_server "$work/data"; rm -rf "$work"' EXIT
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$work/sock" PGPORT=54393 PGUSER=postgres PGDATABASE=bench
start_server "$work/data" "$PGHOST" "$PGPORT" "shared_buffers = 1GB" "max_wal_size = 8GB" \
    "work_mem = 64MB" "maintenance_work_mem = 512MB"
psql -q -X -d postgres -c 'CREATE DATABASE bench'
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
seconds() {  # run SQL (psql arguments), print elapsed seconds
    local t0 t1
    t0=$(date +%s.%N)
    q "$@" >/dev/null
    t1=$(date +%s.%N)
    echo "scale=2; ($t1 - $t0) / 1" | bc
}

# the data: 6 stores of 3 brands; $members members, about $per stays each
# (0 to 2 x $per, by a hash of the member) over the last three years;
# a twentieth withdrew profiling consent, a third granted SMS marketing
t0=$(date +%s)
q -v members="$members" -v per="$per" <<'SQL'
CREATE EXTENSION loyalty;
SELECT loyalty.store_create(gen_random_uuid()::text, 's' || i, 'Bench ' || i, 'brand' || (i % 3), 'r', 'Asia/Shanghai')
  FROM generate_series(0, 5) i;
-- random card numbers may collide: skip those and top up
INSERT INTO loyalty.member (card_no, home_store, enrolled_at)
SELECT loyalty.card_number_new(), 's' || (i % 6), now() - (i % 1000) * interval '1 day'
  FROM generate_series(1, :members) i ON CONFLICT DO NOTHING;
INSERT INTO loyalty.member (card_no, home_store, enrolled_at)
SELECT loyalty.card_number_new(), 's' || (i % 6), now() - (i % 1000) * interval '1 day'
  FROM generate_series(1, :members - (SELECT count(*) FROM loyalty.member)) i ON CONFLICT DO NOTHING;
CREATE TABLE bench_m AS
SELECT member_id, row_number() OVER (ORDER BY member_id) AS i,
       hashint8(row_number() OVER (ORDER BY member_id)) AS h
  FROM loyalty.member;
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, room_revenue, other_revenue)
SELECT b.member_id, 's' || ((b.i + k) % 6),
       current_date - 1 - d.ago, current_date - 1 - d.ago + 1 + (k % 3),
       300 + (hashint8(b.i * 31 + k) & 1023), (hashint8(b.i * 17 + k) & 127)
  FROM bench_m b
  CROSS JOIN LATERAL generate_series(1, (abs(b.h) % (2 * :per + 1))::int) k
  CROSS JOIN LATERAL (SELECT (abs(hashint8(b.i * 7919 + k)) % 1095)::int AS ago) d;
INSERT INTO loyalty.member_consent (member_id, purpose, granted, notice_version)
SELECT member_id, 'profiling', false, 'bench' FROM bench_m WHERE i % 20 = 0;
INSERT INTO loyalty.member_consent (member_id, purpose, granted, notice_version)
SELECT member_id, 'marketing_sms', true, 'bench' FROM bench_m WHERE i % 3 = 0;
-- the ledger: one accrual entry and lot per stay; every tenth lot
-- expired, every fifth half redeemed
CREATE TABLE bench_lot AS
SELECT gen_random_uuid() AS lot, gen_random_uuid() AS entry, s.member_id, s.store_code,
       ((s.room_revenue * 10)::bigint) AS points, row_number() OVER () AS n,
       (s.check_out::timestamp AT TIME ZONE 'Asia/Shanghai') + interval '12 hours' AS at
  FROM loyalty.stay s;
INSERT INTO loyalty.point_entry (entry_id, member_id, store_code, kind, points, balance_after, occurred_at)
SELECT entry, member_id, store_code, 'accrue', points, 0, at FROM bench_lot;
INSERT INTO loyalty.point_entry (member_id, store_code, kind, points, balance_after, occurred_at)
SELECT member_id, store_code, 'expire', -points, 0, at + interval '2 years' FROM bench_lot WHERE n % 10 = 0
UNION ALL
SELECT member_id, store_code, 'redeem', -(points / 2), 0, at + interval '1 day' FROM bench_lot WHERE n % 5 = 0 AND n % 10 <> 0;
INSERT INTO loyalty.point_lot (lot_id, member_id, store_code, source, points, remaining, state, earned_at,
                               active_from, expires_at, entry_id)
SELECT lot, member_id, store_code, 'stay', points,
       CASE WHEN n % 10 = 0 THEN 0 WHEN n % 5 = 0 THEN points - points / 2 ELSE points END,
       CASE WHEN n % 10 = 0 THEN 'expired' ELSE 'active' END, at, at, at + interval '2 years', entry
  FROM bench_lot;
INSERT INTO loyalty.point_balance (member_id, balance)
SELECT member_id, sum(CASE WHEN n % 10 = 0 THEN 0 WHEN n % 5 = 0 THEN points - points / 2 ELSE points END)
  FROM bench_lot GROUP BY member_id;
DROP TABLE bench_lot;
-- the segments (latest versions are what segment_refresh evaluates)
SELECT loyalty.segment_define('bench-1', 'winback', 'Lapsing, reachable by SMS',
                              '{"churn_warning": true, "consents": ["marketing_sms"]}');
SELECT loyalty.segment_define('bench-2', 'high_brand1', 'High value guests of brand1',
                              '{"value_levels": ["high"], "brands": ["brand1"]}');
SELECT loyalty.segment_define('bench-3', 'loyal_s0s1', 'Recent and frequent, homes s0 and s1',
                              '{"r_min": 4, "f_min": 4, "home_stores": ["s0", "s1"]}');
-- the user's tables: shaped like the extension's
CREATE TABLE sql_score (LIKE loyalty.member_score INCLUDING ALL);
CREATE INDEX ON sql_score (member_id, run_id);
CREATE TABLE sql_segment_member (segment text, member_id uuid, PRIMARY KEY (segment, member_id));
CREATE INDEX ON sql_segment_member (member_id);
VACUUM ANALYZE;
SQL
echo "data_seconds $(( $(date +%s) - t0 ))"
echo "members $(q -At -c 'SELECT count(*) FROM loyalty.member')"
echo "stays $(q -At -c 'SELECT count(*) FROM loyalty.stay')"
echo "point_lots $(q -At -c 'SELECT count(*) FROM loyalty.point_lot')"

# the set-based SQL for the scores: the same measures, bins and flags as
# score_refresh with its default parameters (bins 5, window 12 months,
# churn factor 2, potential 2 stays in 180 days), as of the same time
cat >"$work/score.sql" <<'EOF2'
INSERT INTO sql_score (run_id, member_id, stays, last_stay, recency_days, frequency, nights, monetary,
    realised_value, usual_interval_days, recent_stays, prior_stays, r, f, m, value_level,
    churn_overdue, frequency_falling, churn_warning, potential_frequent)
WITH p AS (
  SELECT d, (d - interval '12 months')::date AS w, (d - interval '6 months')::date AS h, d - 180 AS pp,
         (SELECT t ->> 'code' FROM jsonb_array_elements(loyalty.policy_at(:'as_of') -> 'tiers') t
           ORDER BY (t ->> 'rank')::int LIMIT 1) AS base
    FROM (SELECT (:'as_of'::timestamptz AT TIME ZONE 'UTC')::date AS d) x),
agg AS (
  SELECT m.member_id, m.tier = p.base AS base, p.d,
         count(s.check_in)::int AS stays, max(s.check_out) AS last_stay,
         max(s.check_in) - min(s.check_in) AS span,
         count(*) FILTER (WHERE s.check_in > p.w)::int AS freq,
         coalesce(sum(s.check_out - s.check_in) FILTER (WHERE s.check_in > p.w), 0)::int AS nights,
         coalesce(sum(s.room_revenue + s.other_revenue) FILTER (WHERE s.check_in > p.w), 0) AS mon,
         coalesce(sum(s.room_revenue + s.other_revenue), 0) AS real,
         count(*) FILTER (WHERE s.check_in > p.h)::int AS recent,
         count(*) FILTER (WHERE s.check_in > p.w AND s.check_in <= p.h)::int AS prior,
         count(*) FILTER (WHERE s.check_in > p.pp)::int AS pot
    FROM p CROSS JOIN loyalty.member m
    LEFT JOIN loyalty.stay s ON s.member_id = m.member_id AND s.status <> 'cancelled' AND s.check_in <= p.d
   WHERE m.status = 'active'
     AND coalesce((SELECT c.granted FROM loyalty.member_consent c
                    WHERE c.member_id = m.member_id AND c.purpose = 'profiling'
                    ORDER BY c.recorded_at DESC, c.consent_id DESC LIMIT 1), true)
   GROUP BY m.member_id, m.tier, p.base, p.d),
sc AS (
  SELECT a.*, CASE WHEN a.stays > 0 THEN greatest(a.d - a.last_stay, 0) END AS rec,
         a.stays >= 2 AND greatest(a.d - a.last_stay, 0)::bigint * (a.stays - 1) > 2 * a.span AS overdue
    FROM agg a),
b AS (
  SELECT sc.*,
         (1 + floor(5 * (rank() OVER (ORDER BY rec DESC NULLS FIRST) - 1) / count(*) OVER ()))::smallint AS r,
         (1 + floor(5 * (rank() OVER (ORDER BY freq) - 1) / count(*) OVER ()))::smallint AS f,
         (1 + floor(5 * (rank() OVER (ORDER BY mon) - 1) / count(*) OVER ()))::smallint AS m
    FROM sc)
SELECT '00000000-0000-0000-0000-000000000000'::uuid, member_id, stays, last_stay, rec, freq, nights, mon, real,
       round(span::numeric / nullif(stays - 1, 0), 2), recent, prior, r, f, m,
       CASE WHEN r + f + m >= 12 THEN 'high' WHEN r + f + m >= 8 THEN 'medium' ELSE 'low' END,
       overdue, recent < prior, overdue OR recent < prior, base AND pot >= 2
  FROM b;
EOF2

# the set-based SQL for the three segments, over the same score run
cat >"$work/segment.sql" <<'EOF2'
CREATE TEMP VIEW scored AS
SELECT s.*, m.home_store, m.tier
  FROM loyalty.member_score s JOIN loyalty.member m ON m.member_id = s.member_id
 WHERE s.run_id = :'score_run' AND m.status = 'active'
   AND coalesce((SELECT c.granted FROM loyalty.member_consent c
                  WHERE c.member_id = m.member_id AND c.purpose = 'profiling'
                  ORDER BY c.recorded_at DESC, c.consent_id DESC LIMIT 1), true);
INSERT INTO sql_segment_member
SELECT 'winback', member_id FROM scored x
 WHERE churn_warning
   AND coalesce((SELECT c.granted FROM loyalty.member_consent c
                  WHERE c.member_id = x.member_id AND c.purpose = 'marketing_sms'
                  ORDER BY c.recorded_at DESC, c.consent_id DESC LIMIT 1), false);
INSERT INTO sql_segment_member
SELECT 'high_brand1', member_id FROM scored x
 WHERE value_level = 'high'
   AND EXISTS (SELECT 1 FROM loyalty.stay st JOIN loyalty.store so ON so.store_code = st.store_code
                WHERE st.member_id = x.member_id AND st.status <> 'cancelled'
                  AND st.check_in <= (:'as_of'::timestamptz AT TIME ZONE 'UTC')::date AND so.brand = 'brand1');
INSERT INTO sql_segment_member
SELECT 'loyal_s0s1', member_id FROM scored x
 WHERE r >= 4 AND f >= 4 AND home_store IN ('s0', 's1');
EOF2

med() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
reset() {
    q <<'SQL'
TRUNCATE loyalty.segment_member, loyalty.member_score, sql_score, sql_segment_member;
DELETE FROM loyalty.job WHERE kind IN ('score', 'segment');
VACUUM ANALYZE loyalty.job, loyalty.member_score, loyalty.segment_member, sql_score, sql_segment_member;
CHECKPOINT;
SQL
}
c_score="" s_score="" c_seg="" s_seg="" r_score="" r_seg=""
for _ in $(seq 1 "$rounds"); do
    reset
    c=$(seconds -c "CALL loyalty.score_refresh(now(), $batch)")
    as_of=$(q -At -c "SELECT params->>'as_of' FROM loyalty.job WHERE kind = 'score' ORDER BY started_at DESC LIMIT 1")
    score_run=$(q -At -c "SELECT job_id FROM loyalty.job WHERE kind = 'score' ORDER BY started_at DESC LIMIT 1")
    progress=$(q -At -c "SELECT done || '/' || total || ' members, ' || percent || '%, ' || rate || ' per second'
                           FROM loyalty.segment_run_progress WHERE run_id = '$score_run'")
    q -c 'CHECKPOINT'
    s=$(seconds -v as_of="$as_of" -f "$work/score.sql")
    cg=$(seconds -c "CALL loyalty.segment_refresh('$as_of')")
    q -c 'CHECKPOINT'
    sg=$(seconds -v as_of="$as_of" -v score_run="$score_run" -f "$work/segment.sql")
    c_score="$c_score $c" s_score="$s_score $s" c_seg="$c_seg $cg" s_seg="$s_seg $sg"
    r_score="$r_score $(echo "scale=2; $c / $s" | bc)" r_seg="$r_seg $(echo "scale=2; $cg / $sg" | bc)"
done
# the results, compared (the last round's)
score_diff=$(q -At -v score_run="$score_run" <<'SQL'
SELECT count(*) FROM (
  (SELECT member_id, stays, last_stay, recency_days, frequency, nights, monetary, realised_value,
          usual_interval_days, recent_stays, prior_stays, r, f, m, value_level, churn_overdue,
          frequency_falling, churn_warning, potential_frequent
     FROM loyalty.member_score WHERE run_id = :'score_run'
   EXCEPT ALL
   SELECT member_id, stays, last_stay, recency_days, frequency, nights, monetary, realised_value,
          usual_interval_days, recent_stays, prior_stays, r, f, m, value_level, churn_overdue,
          frequency_falling, churn_warning, potential_frequent FROM sql_score)
  UNION ALL
  (SELECT member_id, stays, last_stay, recency_days, frequency, nights, monetary, realised_value,
          usual_interval_days, recent_stays, prior_stays, r, f, m, value_level, churn_overdue,
          frequency_falling, churn_warning, potential_frequent FROM sql_score
   EXCEPT ALL
   SELECT member_id, stays, last_stay, recency_days, frequency, nights, monetary, realised_value,
          usual_interval_days, recent_stays, prior_stays, r, f, m, value_level, churn_overdue,
          frequency_falling, churn_warning, potential_frequent
     FROM loyalty.member_score WHERE run_id = :'score_run')) x;
SQL
)
seg_diff=$(q -At <<'SQL'
SELECT count(*) FROM (
  (SELECT d.code, sm.member_id FROM loyalty.segment_member sm JOIN loyalty.segment_def d USING (segment_id)
   EXCEPT SELECT segment, member_id FROM sql_segment_member)
  UNION ALL
  (SELECT segment, member_id FROM sql_segment_member
   EXCEPT SELECT d.code, sm.member_id FROM loyalty.segment_member sm JOIN loyalty.segment_def d USING (segment_id))) x;
SQL
)
scored=$(q -At -c "SELECT count(*) FROM loyalty.member_score WHERE run_id = '$score_run'")
sizes=$(q -At -c "SELECT string_agg(d.code || '=' || n, ' ' ORDER BY d.code) FROM (SELECT segment_id, count(*) n FROM loyalty.segment_member GROUP BY 1) x JOIN loyalty.segment_def d USING (segment_id)")
# shellcheck disable=SC2086
{
    echo "score_c_seconds $(med $c_score) (median of $rounds rounds:$c_score; $scored members scored; last run: $progress)"
    echo "score_sql_seconds $(med $s_score) (median of $rounds rounds:$s_score)"
    echo "score_c_to_sql_time_ratio $(med $r_score) (median of the rounds' ratios:$r_score)"
    echo "segment_c_seconds $(med $c_seg) (median of $rounds rounds:$c_seg; $sizes)"
    echo "segment_sql_seconds $(med $s_seg) (median of $rounds rounds:$s_seg)"
    echo "segment_to_sql_time_ratio $(med $r_seg) (median of the rounds' ratios:$r_seg)"
    echo "score_rows_differing $score_diff"
    echo "segment_rows_differing $seg_diff"
}

# the finance views on the same data
q -c 'CHECKPOINT'
echo "finance_liability_seconds $(seconds -c 'SELECT * FROM loyalty.finance_liability')"
echo "finance_liability_seconds_again $(seconds -c 'SELECT * FROM loyalty.finance_liability')"
echo "finance_reconciliation_seconds $(seconds -c 'SELECT * FROM loyalty.finance_reconciliation')"
q -P pager=off -c "SELECT outstanding_points, gross_liability, breakage_rate, expected_liability
                     FROM loyalty.finance_liability WHERE store_code IS NULL"
q -P pager=off -c "SELECT entries_total, balances_total, active_lots_total, members_out_of_balance, balanced
                     FROM loyalty.finance_reconciliation"

#!/usr/bin/env bash
# Privacy benchmark (docs/privacy.md, "Performance"): the cost of masking,
# row level security and audit, each against a floor measured in the same
# run on the same data.
#
#   bench/privacy.sh              1,000,000 members, 10 s per pgbench run
#   MEMBERS=100000 DURATION=5 bench/privacy.sh
#
# 1. one-member read through loyalty.member_frontdesk (as a front desk
#    login: masks + RLS + security barrier) vs the raw primary-key read of
#    the same three tables (superuser): TPS and ratio, target >= 0.8;
# 2. a full scan of loyalty.bi_members (pseudonym HMAC + generalisation +
#    the consent in effect per row) vs the raw scan of the same columns: SCAN_ROUNDS (7) rounds of
#    one then the other, median times and median ratio, target <= 1.5;
# 3. the audit's cost per read: loyalty.frontdesk_lookup() by card number
#    (audited: one record committed by the audit writer per call, and the
#    login's lookup budget counted from the audit trail) vs the unaudited
#    view read of run 1.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

members=${MEMBERS:-1000000}
duration=${DURATION:-10}
clients=${CLIENTS:-2}

as_unprivileged_copy "MEMBERS DURATION CLIENTS" bench/privacy.sh

work=$(mktemp -d /tmp/loyalty-benchrun.XXXXXX)
trap 'stop_server "$work/data"; rm -rf "$work"' EXIT
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$work/sock" PGPORT=55499 PGUSER=postgres PGDATABASE=postgres
# the lookup budget (60 per login and hour) would refuse the benchmark's
# lookups after the first minute: raise it to the maximum
start_server "$work/data" "$PGHOST" "$PGPORT" "shared_buffers = 256MB" "synchronous_commit = on" \
    "loyalty.lookup_budget = 1000000"

log "loading $members members"
psql -q -X -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE EXTENSION loyalty;
-- the key the BI pseudonyms and ID checks need (1.2: never made in silence)
SELECT loyalty.key_create();
SELECT loyalty.store_create(gen_random_uuid()::text, 'bsa', 'Bench A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'bench_desk', 'bsa', 'frontdesk');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'bench_bi', NULL, 'bi');
INSERT INTO loyalty.member (card_no, home_store)
SELECT loyalty.card_number_new(), 'bsa' FROM generate_series(1, $members)
ON CONFLICT DO NOTHING;
INSERT INTO loyalty.member_profile (member_id, full_name, phone, email, birth_date, gender)
SELECT member_id, '张' || (ARRAY['伟','芳','娜','敏'])[1 + (n % 4)::int],
       (13800000000 + n)::text, 'm' || n || '@example.com',
       DATE '1950-01-01' + (n % 20000)::int, (ARRAY['female','male'])[1 + (n % 2)::int]
  FROM (SELECT member_id, row_number() OVER () AS n FROM loyalty.member) s;
CREATE TABLE public.bench_ids (n int PRIMARY KEY, member_id uuid NOT NULL, card_no text NOT NULL);
INSERT INTO public.bench_ids SELECT row_number() OVER (), member_id, card_no FROM loyalty.member;
-- every member agreed to profiling: the BI views list only those (issue 12.5)
INSERT INTO loyalty.member_consent (member_id, purpose, granted, notice_version)
SELECT member_id, 'profiling', true, 'bench' FROM loyalty.member;
GRANT SELECT ON public.bench_ids TO bench_desk;
VACUUM ANALYZE;
SQL
n=$(psql -X -At -c 'SELECT count(*) FROM public.bench_ids')

cat >"$work/view.sql" <<'SQL'
\set n random(1, :members)
SELECT v.* FROM loyalty.member_frontdesk v WHERE v.member_id = (SELECT member_id FROM public.bench_ids WHERE n = :n);
SQL
cat >"$work/raw.sql" <<'SQL'
\set n random(1, :members)
SELECT m.*, p.*, i.* FROM loyalty.member m
  LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id
  LEFT JOIN loyalty.member_identity i ON i.member_id = m.member_id
 WHERE m.member_id = (SELECT member_id FROM public.bench_ids WHERE n = :n);
SQL
cat >"$work/audited.sql" <<'SQL'
\set n random(1, :members)
SELECT * FROM loyalty.frontdesk_lookup((SELECT card_no FROM public.bench_ids WHERE n = :n), 'bench');
SQL

tps() {  # user script
    pgbench -n -M prepared -U "$1" -c "$clients" -j "$clients" -T "$duration" -D members="$n" -f "$2" 2>/dev/null \
        | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "members: $n, clients: $clients, $duration s per run"
raw=$(tps postgres "$work/raw.sql")
view=$(tps bench_desk "$work/view.sql")
echo "1. one-member read   raw PK read: $raw tps   front-desk view: $view tps   ratio: $(ratio "$view" "$raw") (target >= 0.80)"

scan_once() {  # user query: wall time in s
    { /usr/bin/time -f '%e' psql -X -q -U "$1" -c "$2" >/dev/null; } 2>&1
}
raw_q="SELECT count(m.member_id), count(m.home_store), count(m.tier), count(p.gender), count(p.birth_date), count(m.enrolled_at) FROM loyalty.member m LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id WHERE m.status <> 'erased'"
bi_q="SELECT count(member_key), count(home_store), count(tier), count(gender), count(birth_decade), count(enrolled_year) FROM loyalty.bi_members"
# SCAN_ROUNDS rounds of the raw scan then the BI scan, one right after the
# other; each round's ratio is BI time over raw time; the result is the
# median time of each and the median ratio, with the lowest and highest
scan_rounds=${SCAN_ROUNDS:-7}
scan_once postgres "$raw_q" >/dev/null; scan_once bench_bi "$bi_q" >/dev/null   # warm the cache
raws="" bis="" sratios=""
for _ in $(seq 1 "$scan_rounds"); do
    r=$(scan_once postgres "$raw_q")
    b=$(scan_once bench_bi "$bi_q")
    raws="$raws $r" bis="$bis $b" sratios="$sratios $(ratio "$b" "$r")"
done
med() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# shellcheck disable=SC2086
rawscan=$(med $raws) biscan=$(med $bis) scanratio=$(med $sratios)
# shellcheck disable=SC2086
scanmin=$(printf '%s\n' $sratios | sort -n | head -1) scanmax=$(printf '%s\n' $sratios | sort -n | tail -1)
echo "2. full BI scan      raw scan: ${rawscan} s   bi_members view: ${biscan} s   ratio: ${scanratio} (median of $scan_rounds rounds, min $scanmin, max $scanmax; target <= 1.50)"

audited=$(tps bench_desk "$work/audited.sql")
cost=$(awk -v a="$audited" -v u="$view" -v c="$clients" 'BEGIN { printf "%.3f", (c / a - c / u) * 1000 }')
echo "3. audit per read    front-desk view (unaudited): $view tps   frontdesk_lookup (audited, one committed record per read): $audited tps   ratio: $(ratio "$audited" "$view")   added latency: $cost ms per read"

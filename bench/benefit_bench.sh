#!/usr/bin/env bash
# Benchmark: loyalty.benefits(member, store) against a floor, the primary-key
# SELECT of one member row, side by side with pgbench on a throwaway server.
#
#   bench/benefit_bench.sh     (BENCH_SECONDS=3 BENCH_CLIENTS=1 BENCH_ROUNDS=8)
#
# Both scripts pick a random member of 10,000 the same way (member ids are
# md5(n)::uuid) and run prepared (-M prepared).  The floor runs as the
# superuser (store roles cannot read loyalty.member); benefits() runs as a
# front-desk login of store "sza".  Each round runs the two pgbench
# processes at the same time, side by side for the same seconds, so that
# both see the same load from other work on the machine (and from each
# other); the result is the median of the rounds' ratios (target >= 0.8),
# with the mean TPS of each side.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

seconds=${BENCH_SECONDS:-3}
clients=${BENCH_CLIENTS:-1}
rounds=${BENCH_ROUNDS:-8}
port=${BENCH_PORT:-55302}

as_unprivileged_copy "BENCH_SECONDS BENCH_CLIENTS BENCH_ROUNDS BENCH_PORT" bench/benefit_bench.sh

work=$(mktemp -d /tmp/loyalty-benchrun.XXXXXX)
cleanup() { stop_server "$work/data"; rm -rf "$work"; }
trap cleanup EXIT

log "building and staging into $work/inst"
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$work/sock" PGPORT="$port" PGUSER=postgres PGDATABASE=bench
start_server "$work/data" "$PGHOST" "$PGPORT"

psql -q -X -d postgres -c 'CREATE DATABASE bench' >/dev/null
psql -q -X -v ON_ERROR_STOP=1 -v catalogue="$here/bench/benefit_catalogue.sql" >/dev/null <<'SQL'
CREATE EXTENSION loyalty;
SELECT loyalty.store_create(gen_random_uuid()::text, 'sza', 'Bench A', 'bay', 'south', 'Asia/Shanghai'),
       loyalty.store_create(gen_random_uuid()::text, 'szb', 'Bench B', 'bay', 'west', 'Asia/Urumqi');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'bench_desk', 'sza', 'frontdesk');
SELECT loyalty.store_create(gen_random_uuid()::text, 'o' || i, 'Other ' || i, 'bay', 'east', 'Asia/Shanghai') FROM generate_series(1, 20) i;
-- the demo catalogue, plus store benefits of the 20 other stores
\i :catalogue
-- 10,000 members over the four tiers; 1% with an unresolved violation
INSERT INTO loyalty.member (member_id, card_no, home_store, tier)
SELECT md5(n::text)::uuid, loyalty.card_number_new(), 'sza',
       (ARRAY['member', 'silver', 'gold', 'platinum'])[1 + n % 4]
  FROM generate_series(1, 10000) n;
INSERT INTO loyalty.risk_tag (member_id, risk_code, store_code, note, raised_by)
SELECT md5(n::text)::uuid, 'unresolved_violation', 'szb', 'bench', 'postgres'
  FROM generate_series(1, 10000, 100) n;
VACUUM ANALYZE;
SQL

cat >"$work/floor.sql" <<'SQL'
\set n random(1, 10000)
SELECT * FROM loyalty.member WHERE member_id = md5(:n::text)::uuid;
SQL
cat >"$work/benefits.sql" <<'SQL'
\set n random(1, 10000)
SELECT * FROM loyalty.benefits(md5(:n::text)::uuid, 'sza');
SQL

# sanity: the benefits script returns rows as the front desk
rows=$(psql -X -A -t -U bench_desk -c "SELECT count(*) FROM loyalty.benefits(md5('4')::uuid, 'sza')")
log "benefits() of member 4 (tier member) at sza: $rows rows"

tps() {  # script user
    pgbench -n -M prepared -c "$clients" -j "$clients" -T "$seconds" -U "$2" -f "$1" bench 2>/dev/null \
        | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

floor_sum=0
bench_sum=0
ratios=""
for r in $(seq 1 "$rounds"); do
    tps "$work/floor.sql" postgres >"$work/floor.tps" &
    b=$(tps "$work/benefits.sql" bench_desk)
    wait
    f=$(cat "$work/floor.tps")
    ratio=$(awk -v b="$b" -v f="$f" 'BEGIN { printf "%.3f", b / f }')
    printf 'round %d: floor %8.0f tps, benefits() %8.0f tps, ratio %s\n' "$r" "$f" "$b" "$ratio"
    floor_sum=$(awk -v a="$floor_sum" -v b="$f" 'BEGIN { print a + b }')
    bench_sum=$(awk -v a="$bench_sum" -v b="$b" 'BEGIN { print a + b }')
    ratios="$ratios $ratio"
done
median=$(printf '%s\n' $ratios | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
printf 'floor    %8.0f tps mean  (SELECT * FROM loyalty.member WHERE member_id = $1)\n' "$(awk -v s="$floor_sum" -v n="$rounds" 'BEGIN { print s / n }')"
printf 'benefits %8.0f tps mean  (SELECT * FROM loyalty.benefits($1, '"'"'sza'"'"'))\n' "$(awk -v s="$bench_sum" -v n="$rounds" 'BEGIN { print s / n }')"
printf 'ratio    %8s median of %d rounds (target >= 0.80; %d client(s) per side, both sides at once for %ds per round)\n' "$median" "$rounds" "$clients" "$seconds"

#!/usr/bin/env bash
# Change-record benchmark (issue 13: "a mutating call with its audit record
# >= 0.9x the same call without"; docs/audit.md, docs/performance.md).
#
# A change record cannot be switched off (no setting may stop the trail),
# so the call without its record is estimated from the marginal cost of a
# record, measured in the same run on the same server:
#   one   BEGIN; loyalty.points_accrue(...); END          (the call, with its record)
#   two   the same and one more change record in the transaction
#         (loyalty._audit_change, through SQL: dearer than the C path
#         points_accrue takes, so the estimate errs against us)
# With t = 1/tps per client: t_without = t_one - (t_two - t_one), and the
# ratio with/without = t_without / t_one = 2 - tps_one / tps_two.
#
#   bench/audit_change_bench.sh                      8 clients, 10 s per run, 5 alternating rounds
#   CLIENTS=1 DURATION=5 ROUNDS=3 bench/audit_change_bench.sh
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

members=${MEMBERS:-2000}
duration=${DURATION:-10}
rounds=${ROUNDS:-5}
clients=${CLIENTS:-8}

as_unprivileged_copy "MEMBERS DURATION ROUNDS CLIENTS" bench/audit_change_bench.sh

work=$(mktemp -d /tmp/loyalty-benchrun.XXXXXX)
trap 'stop_server "$work/data"; rm -rf "$work"' EXIT
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$work/sock" PGPORT=55497 PGUSER=postgres PGDATABASE=postgres
start_server "$work/data" "$PGHOST" "$PGPORT" "shared_buffers = 256MB" "synchronous_commit = on"

log "loading $members members"
psql -q -X -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE EXTENSION loyalty;
SELECT loyalty.store_create(gen_random_uuid()::text, 'bac', 'Bench Changes', 'bay', 'south', 'Asia/Shanghai');
INSERT INTO loyalty.member (card_no, home_store)
SELECT loyalty.card_number_new(), 'bac' FROM generate_series(1, $members)
ON CONFLICT DO NOTHING;
CREATE TABLE public.bench_ids (n int PRIMARY KEY, member_id uuid NOT NULL);
INSERT INTO public.bench_ids SELECT row_number() OVER (), member_id FROM loyalty.member;
VACUUM ANALYZE;
SQL
n=$(psql -X -At -c 'SELECT count(*) FROM public.bench_ids')

cat >"$work/one.sql" <<'SQL'
\set n random(1, :members)
BEGIN;
SELECT loyalty.points_accrue(gen_random_uuid()::text, (SELECT member_id FROM public.bench_ids WHERE n = :n), 'bac', 10, 'adjustment');
END;
SQL
cat >"$work/two.sql" <<'SQL'
\set n random(1, :members)
BEGIN;
SELECT loyalty.points_accrue(gen_random_uuid()::text, (SELECT member_id FROM public.bench_ids WHERE n = :n), 'bac', 10, 'adjustment');
SELECT loyalty._audit_change((SELECT member_id FROM public.bench_ids WHERE n = :n), 'points_accrue', 'loyalty', '{"bench": true}');
END;
SQL

run() {  # script: prints tps
    pgbench -n -M prepared -c "$clients" -j "$(( clients < 4 ? clients : 4 ))" -T "$duration" \
        -D members="$n" -f "$1" 2>&1 | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "members: $n, $clients clients, $duration s per run, $rounds alternating rounds (medians)"
ones="" twos="" ests=""
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then a=$(run "$work/one.sql"); b=$(run "$work/two.sql")
    else b=$(run "$work/two.sql"); a=$(run "$work/one.sql"); fi
    e=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", 2 - a / b }')
    echo "round $r: accrue $a tps, accrue + 1 more record $b tps, with/without $e"
    ones="$ones $a" twos="$twos $b" ests="$ests $e"
done
echo "median: accrue $(median <<<"$ones") tps, accrue + 1 more record $(median <<<"$twos") tps," \
     "with/without (estimate) $(median <<<"$ests") (target >= 0.9)"

#!/usr/bin/env bash
# Ledger benchmark: pgbench TPS of loyalty.points_accrue and loyalty.points_redeem against
# a floor measured in the same run on the same server: one transaction that
# inserts one ledger row, inserts one lot row and updates one balance row
# (fsync on).  1, 2 and 8 clients over 1,000 members, and a hot variant on
# 10 members.  Each figure is BENCH_ROUNDS rounds of the floor then the
# operation, one right after the other (the machine is shared: the floor of
# each round sees nearly the load its operation sees); a round's ratio is
# its operation TPS over its floor TPS.  Prints, per operation, clients and
# members: the median TPS, the median floor TPS, the median ratio and the
# lowest and highest round ratio.
#
# Members 1 to 1,000 are the accrue and redeem members; the hot variant uses
# members 1 to 10, so its redemptions draw on the 10-point lots that the hot
# accrue run just left (about 100 lots per redemption of 1,000 points).
# "redeem-seed" is the same hot redemption by 10 other members (1,001 to
# 1,010) that hold only their seed lot: one lot per redemption.
#
#   bench/ledger_bench.sh            (as root or an unprivileged user)
#   BENCH_SECONDS=10 BENCH_ROUNDS=5 BENCH_CLIENTS="8" bench/ledger_bench.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

as_unprivileged_copy "BENCH_SECONDS BENCH_ROUNDS BENCH_CLIENTS BENCH_MEMBERS" bench/ledger_bench.sh

secs=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-3}
client_counts=${BENCH_CLIENTS:-1 2 8}
member_counts=${BENCH_MEMBERS:-1000 10}
work=$(mktemp -d /tmp/loyalty-benchrun.XXXXXX)
trap 'stop_server "$work/data"; rm -rf "$work"' EXIT
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$work/sock" PGPORT=54391 PGUSER=postgres PGDATABASE=bench
start_server "$work/data" "$PGHOST" "$PGPORT" "shared_buffers = 256MB" "synchronous_commit = on"
psql -q -X -d postgres -c 'CREATE DATABASE bench'
psql -q -X -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION loyalty;
SELECT loyalty.store_create(gen_random_uuid()::text, 'bsz', 'Bench Shenzhen', 'bay', 'south', 'Asia/Shanghai');
CREATE TABLE bench_member AS
  SELECT i, (loyalty.member_enroll(gen_random_uuid()::text, 'bsz', 'Bench ' || i)).member_id FROM generate_series(1, 1010) i;
ALTER TABLE bench_member ADD PRIMARY KEY (i);
SELECT count(loyalty.points_accrue('seed-' || i, member_id, 'bsz', 100000000, 'adjustment')) FROM bench_member;
-- the floor: the same three writes without the ledger's logic
CREATE TABLE floor_entry (entry_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), member_id uuid NOT NULL,
    points bigint NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE floor_lot (lot_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), member_id uuid NOT NULL,
    points bigint NOT NULL, remaining bigint NOT NULL);
CREATE TABLE floor_balance (i int PRIMARY KEY, member_id uuid NOT NULL, balance bigint NOT NULL);
INSERT INTO floor_balance SELECT i, member_id, 0 FROM bench_member;
VACUUM ANALYZE;
SQL

cat >"$work/floor.sql" <<'SQL'
\set m random(1, :members)
BEGIN;
INSERT INTO floor_entry (member_id, points) SELECT member_id, 10 FROM floor_balance WHERE i = :m;
INSERT INTO floor_lot (member_id, points, remaining) SELECT member_id, 10, 10 FROM floor_balance WHERE i = :m;
UPDATE floor_balance SET balance = balance + 10 WHERE i = :m;
END;
SQL
cat >"$work/points_accrue.sql" <<'SQL'
\set m random(1, :members)
SELECT loyalty.points_accrue(gen_random_uuid()::text, member_id, 'bsz', 10, 'stay') FROM bench_member WHERE i = :m;
SQL
cat >"$work/points_redeem.sql" <<'SQL'
\set m :base + random(1, :members)
SELECT loyalty.points_redeem(gen_random_uuid()::text, member_id, 'bsz', 1000, 'voucher') FROM bench_member WHERE i = :m;
SQL

tps() {  # script clients members
    pgbench -n -M prepared -T "$secs" -c "$2" -j "$2" -D members="$3" -D base="${4:-0}" -f "$work/$1.sql" 2>"$work/pgbench.err" \
        | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | grep . || { cat "$work/pgbench.err" >&2; die "pgbench $1 failed"; }
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '%-11s %7s %7s %10s %10s %6s %6s %6s  (medians of %d rounds of %ds)\n' \
    op clients members tps floor_tps ratio min max "$rounds" "$secs"
for members in $member_counts; do
    for c in $client_counts; do
        ops="accrue redeem"
        [ "$members" -le 10 ] && ops="$ops redeem-seed"
        for op in $ops; do
            ts="" fs="" rs=""
            script=points_$op base=0
            [ "$op" = redeem-seed ] && script=points_redeem base=1000
            for _ in $(seq 1 "$rounds"); do
                f=$(tps floor "$c" "$members")
                t=$(tps "$script" "$c" "$members" "$base")
                ts="$ts $t" fs="$fs $f"
                rs="$rs $(awk -v t="$t" -v f="$f" 'BEGIN { printf "%.3f", t / f }')"
            done
            printf '%-11s %7s %7s %10.1f %10.1f %6.2f %6.2f %6.2f\n' "$op" "$c" "$members" \
                "$(printf '%s\n' $ts | median)" "$(printf '%s\n' $fs | median)" \
                "$(printf '%s\n' $rs | median)" \
                "$(printf '%s\n' $rs | sort -n | head -1)" "$(printf '%s\n' $rs | sort -n | tail -1)"
        done
    done
done

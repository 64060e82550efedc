#!/usr/bin/env bash
# Ledger benchmark: pgbench TPS of loyalty.accrue and loyalty.redeem against
# a floor measured in the same run on the same server: one transaction that
# inserts one ledger row, inserts one lot row and updates one balance row
# (fsync on).  1, 2 and 8 clients over 1,000 members, and a hot variant on
# 10 members.  Prints "op clients members tps floor_tps ratio".
#
#   bench/ledger_bench.sh            (as root or an unprivileged user)
#   BENCH_SECONDS=30 bench/ledger_bench.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

if [ "$(id -u)" -eq 0 ]; then
    ensure_packages
    user=$(unprivileged_user)
    work=$(mktemp -d /tmp/loyalty-bench.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    cp -a "$here" "$work/src"
    make -s -C "$work/src" clean >/dev/null 2>&1 || true
    chown -R "$user" "$work"
    runuser -u "$user" -- env BENCH_SECONDS="${BENCH_SECONDS:-10}" "$work/src/bench/ledger_bench.sh"
    exit $?
fi

secs=${BENCH_SECONDS:-10}
work=$(mktemp -d /tmp/loyalty-benchrun.XXXXXX)
trap 'stop_server "$work/data"; rm -rf "$work"' EXIT
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$work/sock" PGPORT=54391 PGUSER=postgres PGDATABASE=bench
start_server "$work/data" "$PGHOST" "$PGPORT" "shared_buffers = 256MB" "synchronous_commit = on"
psql -q -X -d postgres -c 'CREATE DATABASE bench'
psql -q -X -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION loyalty;
SELECT loyalty.create_store('bsz', 'Bench Shenzhen', 'bay', 'south', 'Asia/Shanghai');
CREATE TABLE bench_member AS
  SELECT i, (loyalty.enroll('bsz', 'Bench ' || i)).member_id FROM generate_series(1, 1000) i;
ALTER TABLE bench_member ADD PRIMARY KEY (i);
SELECT count(loyalty.accrue(member_id, 'bsz', 100000000, 'adjustment', 'seed-' || i)) FROM bench_member;
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
cat >"$work/accrue.sql" <<'SQL'
\set m random(1, :members)
SELECT loyalty.accrue(member_id, 'bsz', 10, 'stay', gen_random_uuid()::text) FROM bench_member WHERE i = :m;
SQL
cat >"$work/redeem.sql" <<'SQL'
\set m random(1, :members)
SELECT loyalty.redeem(member_id, 'bsz', 1000, 'voucher', gen_random_uuid()::text) FROM bench_member WHERE i = :m;
SQL

tps() {  # script clients members
    pgbench -n -M prepared -T "$secs" -c "$2" -j "$2" -D members="$3" -f "$work/$1.sql" 2>/dev/null \
        | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

printf '%-7s %7s %7s %10s %10s %6s\n' op clients members tps floor_tps ratio
for members in 1000 10; do
    for c in 1 2 8; do
        f=$(tps floor "$c" "$members")
        for op in accrue redeem; do
            t=$(tps "$op" "$c" "$members")
            printf '%-7s %7s %7s %10.1f %10.1f %6.2f\n' "$op" "$c" "$members" "$t" "$f" \
                "$(echo "$t / $f" | bc -l)"
        done
    done
done

#!/usr/bin/env bash
# The ledger's C path against the SQL a user would write (issue 19), in one
# run on one server (pgbench -M prepared, fsync on, synchronous_commit on):
#
#   accrue       loyalty.points_accrue vs the one-round-trip floor (one
#                statement inserting an entry and a lot and updating the
#                balance) and vs plain.accrue, the PL/pgSQL lot ledger of
#                bench/ledger_plpgsql.sql; BENCH_CLIENTS clients (8) over
#                1,000 members.
#   pairs        accrue 1,000 then redeem 1,000 points for one of 10 hot
#                members (two transactions per pgbench transaction), C vs
#                plain; then 0 overdraws is checked on both ledgers.
#   redeem-lots  redeem 1,000 points from a member holding 20,000 lots of
#                100 points (10 lots drawn per redemption; exhausted lots
#                pile up behind as the run goes on) vs redeem-one, the same
#                redemption from a member holding one large lot; the
#                PL/pgSQL ledger's redemption on the same shapes alongside.
#
# Each round runs every competitor of a measure for BENCH_SECONDS, one
# right after the other, in an order that rotates from round to round (the
# machine is shared: each sees nearly the load the others see); a round's
# ratio is one competitor's TPS over the other's.  Printed per ratio: the
# median of the rounds, the lowest and the highest, and the load average
# (uptime) before and after.  BENCH_TSV=file appends the figures in
# bench/figures.tsv's format.
#
#   bench/ledger_compare.sh               (as root or an unprivileged user)
#   BENCH_SECONDS=10 BENCH_ROUNDS=7 bench/ledger_compare.sh
#   BENCH_ONLY="accrue pairs" bench/ledger_compare.sh
#
# redeem-lots holds 20,000 redemptions per side (10 members x 2,000,000
# points): rounds x BENCH_SECONDS x its tps must stay below that, or
# pgbench stops with 'insufficient points' (at ~850 tps, 3 rounds of 5 s).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

as_unprivileged_copy "BENCH_SECONDS BENCH_ROUNDS BENCH_CLIENTS BENCH_ONLY BENCH_TSV BENCH_LABEL" bench/ledger_compare.sh

secs=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-5}
clients=${BENCH_CLIENTS:-8}
only=${BENCH_ONLY:-accrue pairs redeem-lots}
label=${BENCH_LABEL:-}
work=$(mktemp -d /tmp/loyalty-benchrun.XXXXXX)
trap 'stop_server "$work/data"; rm -rf "$work"' EXIT
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$work/sock" PGPORT=54392 PGUSER=postgres PGDATABASE=bench
start_server "$work/data" "$PGHOST" "$PGPORT" "shared_buffers = 256MB" "synchronous_commit = on"
psql -q -X -d postgres -c 'CREATE DATABASE bench'
psql -q -X -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION loyalty' -f "$here/bench/ledger_plpgsql.sql" >/dev/null
psql -q -X -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SELECT loyalty.store_create(gen_random_uuid()::text, 'bsz', 'Bench Shenzhen', 'bay', 'south', 'Asia/Shanghai');
-- 1-1,000: accrue; 1-10: pairs; 1,001-1,010: redeem-one; 1,011-1,020: redeem-lots
CREATE TABLE bench_member AS
  SELECT i, (loyalty.member_enroll(gen_random_uuid()::text, 'bsz', 'Bench ' || i)).member_id FROM generate_series(1, 1020) i;
ALTER TABLE bench_member ADD PRIMARY KEY (i);
INSERT INTO plain.store SELECT store_code FROM loyalty.store;
INSERT INTO plain.member SELECT member_id, 'active' FROM bench_member;
SELECT count(loyalty.points_accrue('seed-' || i, member_id, 'bsz', 100000000, 'adjustment')),
       count(plain.accrue('seed-' || i, member_id, 'bsz', 100000000, 'adjustment'))
  FROM bench_member WHERE i <= 1010;
-- redeem-lots: 20,000 lots of 100 points per member, written directly (as
-- 20,000 accruals would have left them, minus the entries)
SELECT count(loyalty.points_accrue('seed-' || i, member_id, 'bsz', 100, 'adjustment')),
       count(plain.accrue('seed-' || i, member_id, 'bsz', 100, 'adjustment'))
  FROM bench_member WHERE i > 1010;
INSERT INTO loyalty.point_lot (member_id, store_code, source, points, remaining, state,
        earned_at, active_from, expires_at, entry_id)
  SELECT b.member_id, 'bsz', 'stay', 100, 100, 'active', now() - g * interval '1 minute',
         now() - g * interval '1 minute', l.expires_at, l.entry_id
    FROM bench_member b JOIN loyalty.point_lot l ON l.member_id = b.member_id,
         generate_series(1, 19999) g
   WHERE b.i > 1010;
UPDATE loyalty.point_balance SET balance = 2000000 FROM bench_member b
 WHERE b.i > 1010 AND point_balance.member_id = b.member_id;
INSERT INTO plain.lot (member_id, store_code, source, points, remaining, earned_at, expires_at, entry_id)
  SELECT b.member_id, 'bsz', 'stay', 100, 100, now() - g * interval '1 minute', l.expires_at, l.entry_id
    FROM bench_member b JOIN plain.lot l ON l.member_id = b.member_id,
         generate_series(1, 19999) g
   WHERE b.i > 1010;
UPDATE plain.balance SET balance = 2000000 FROM bench_member b
 WHERE b.i > 1010 AND plain.balance.member_id = b.member_id;
-- the one-round-trip floor: the same three writes in one statement
CREATE TABLE floor_entry (entry_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), member_id uuid NOT NULL,
    points bigint NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE floor_lot (lot_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), member_id uuid NOT NULL,
    points bigint NOT NULL, remaining bigint NOT NULL);
CREATE TABLE floor_balance (i int PRIMARY KEY, member_id uuid NOT NULL, balance bigint NOT NULL);
INSERT INTO floor_balance SELECT i, member_id, 0 FROM bench_member;
VACUUM ANALYZE;
SQL

cat >"$work/floor.sql" <<'SQL'
\set m random(1, 1000)
WITH e AS (INSERT INTO floor_entry (member_id, points) SELECT member_id, 10 FROM floor_balance WHERE i = :m RETURNING member_id),
     l AS (INSERT INTO floor_lot (member_id, points, remaining) SELECT member_id, 10, 10 FROM e RETURNING member_id)
UPDATE floor_balance SET balance = balance + 10 WHERE i = :m AND member_id IN (SELECT member_id FROM l);
SQL
cat >"$work/c_accrue.sql" <<'SQL'
\set m random(1, 1000)
SELECT loyalty.points_accrue(gen_random_uuid()::text, member_id, 'bsz', 10, 'stay') FROM bench_member WHERE i = :m;
SQL
cat >"$work/plain_accrue.sql" <<'SQL'
\set m random(1, 1000)
SELECT plain.accrue(gen_random_uuid()::text, member_id, 'bsz', 10, 'stay') FROM bench_member WHERE i = :m;
SQL
cat >"$work/c_pairs.sql" <<'SQL'
\set m random(1, 10)
SELECT loyalty.points_accrue(gen_random_uuid()::text, member_id, 'bsz', 1000, 'stay') FROM bench_member WHERE i = :m;
SELECT loyalty.points_redeem(gen_random_uuid()::text, member_id, 'bsz', 1000, 'voucher') FROM bench_member WHERE i = :m;
SQL
cat >"$work/plain_pairs.sql" <<'SQL'
\set m random(1, 10)
SELECT plain.accrue(gen_random_uuid()::text, member_id, 'bsz', 1000, 'stay') FROM bench_member WHERE i = :m;
SELECT plain.redeem(gen_random_uuid()::text, member_id, 'bsz', 1000, 'voucher') FROM bench_member WHERE i = :m;
SQL
for impl in c plain; do
    fn=loyalty.points_redeem
    [ $impl = plain ] && fn=plain.redeem
    for shape in one:1000 lots:1010; do
        printf '%s\n' "\\set m ${shape#*:} + random(1, 10)" \
            "SELECT $fn(gen_random_uuid()::text, member_id, 'bsz', 1000, 'voucher') FROM bench_member WHERE i = :m;" \
            >"$work/${impl}_redeem_${shape%%:*}.sql"
    done
done

tps() {  # script
    pgbench -n -M prepared -T "$secs" -c "$clients" -j "$clients" -f "$work/$1.sql" 2>"$work/pgbench.err" \
        | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | grep . || { cat "$work/pgbench.err" >&2; die "pgbench $1 failed"; }
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
load() { uptime | sed 's/.*load average: //; s/,//g' | awk '{ print $1 }'; }

# measure NAME SCRIPT... : rounds of every script in rotating order; fills
# tps_<script> with the TPS of every round (space separated, round order)
declare -A runs
measure() {
    local name=$1 r i n s
    shift
    local scripts=("$@")
    n=${#scripts[@]}
    load_before=$(load)
    for s in "${scripts[@]}"; do runs[$s]=""; done
    for r in $(seq 0 $((rounds - 1))); do
        for i in $(seq 0 $((n - 1))); do
            s=${scripts[$(((i + r) % n))]}
            runs[$s]="${runs[$s]} $(tps "$s")"
        done
    done
    load_after=$(load)
    log "$name: done (load $load_before -> $load_after)"
}

printf '%-12s %-34s %10s %10s %6s %6s %6s %s\n' measure ratio tps other median min max "load (medians of $rounds rounds of ${secs}s, $clients clients)"
# ratio MEASURE TEXT A B TARGET: per-round A/B, printed and appended to BENCH_TSV
ratio() {
    local m=$1 text=$2 a=$3 b=$4 target=$5 rs="" k
    local -a ta tb
    read -r -a ta <<<"${runs[$a]}"
    read -r -a tb <<<"${runs[$b]}"
    for k in "${!ta[@]}"; do rs="$rs $(awk -v x="${ta[$k]}" -v y="${tb[$k]}" 'BEGIN { printf "%.3f", x / y }')"; done
    local med mn mx tma tmb
    med=$(printf '%s\n' $rs | median); mn=$(printf '%s\n' $rs | sort -g | head -1); mx=$(printf '%s\n' $rs | sort -g | tail -1)
    tma=$(printf '%s\n' ${runs[$a]} | median); tmb=$(printf '%s\n' ${runs[$b]} | median)
    printf '%-12s %-34s %10.1f %10.1f %6.2f %6.2f %6.2f %s -> %s\n' "$m" "$text" "$tma" "$tmb" "$med" "$mn" "$mx" "$load_before" "$load_after"
    if [ -n "${BENCH_TSV:-}" ]; then
        printf 'ledger\t%s %s (median of %d rounds of %ds, min %.2f max %.2f, load %s->%s)%s\t%s\t%.1f\t%.1f\t%.2f\t%s\ttps\t%s\n' \
            "$m" "$text" "$rounds" "$secs" "$mn" "$mx" "$load_before" "$load_after" "${label:+, $label}" \
            "$clients" "$tma" "$tmb" "$med" "$target" "$(date -u +%F)" >>"$BENCH_TSV"
    fi
}

for m in $only; do
    case $m in
        accrue)
            measure accrue floor c_accrue plain_accrue
            ratio accrue "C vs one-round-trip floor" c_accrue floor ">=0.80"
            ratio accrue "C vs PL/pgSQL ledger" c_accrue plain_accrue ">=1.10"
            ratio accrue "PL/pgSQL ledger vs floor" plain_accrue floor "" ;;
        pairs)
            measure pairs c_pairs plain_pairs
            ratio pairs "C vs PL/pgSQL, 10 hot members" c_pairs plain_pairs ">=0.70"
            over=$(psql -X -At -c "SELECT (SELECT count(*) FROM loyalty.point_balance WHERE balance < 0)
                + (SELECT count(*) FROM plain.balance WHERE balance < 0)
                + (SELECT count(*) FROM bench_member b, loyalty.ledger_check(b.member_id) c WHERE b.i <= 10)
                + (SELECT count(*) FROM plain.balance b WHERE balance <> (SELECT sum(remaining) FROM plain.lot l WHERE l.member_id = b.member_id))")
            printf '%-12s %-34s %s\n' pairs "overdrawn or inconsistent members" "$over" ;;
        redeem-lots)
            measure redeem-lots c_redeem_lots c_redeem_one plain_redeem_lots plain_redeem_one
            ratio redeem-lots "C 10 lots vs C one lot" c_redeem_lots c_redeem_one ">=0.50"
            ratio redeem-lots "C vs PL/pgSQL, 10 lots" c_redeem_lots plain_redeem_lots ""
            ratio redeem-lots "C vs PL/pgSQL, one lot" c_redeem_one plain_redeem_one ""
            ratio redeem-lots "PL/pgSQL 10 lots vs one lot" plain_redeem_lots plain_redeem_one "" ;;
        *) die "unknown measure $m" ;;
    esac
done

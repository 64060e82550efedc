#!/usr/bin/env bash
# Change-record benchmark (issue 13: "a mutating call with its audit record
# >= 0.9x the same call without"; docs/audit.md, docs/performance.md).
#
# Measured directly, in the same run on the same server, alternating:
#   with     BEGIN; loyalty.points_accrue(...); END   (the call, with its change record)
#   without  the same script in sessions started with
#            loyalty.audit_changes_bench_off = on (a bench aid honoured only
#            for a superuser's own session: docs/audit.md), so the call
#            writes no record and the writers have nothing to chain
# ratio with/without = tps(with) / tps(without), per round; medians.
# Also the server's CPU time per call (all its processes, writers
# included, from /proc; pgbench and the machine's other load excluded):
# without/with is the ratio the tps would show on a machine the server
# had to itself with the CPU the bottleneck.
# Also the WAL per call (pg_stat_wal), which the machine's load does not
# change.  A CHECKPOINT before the warm-up, none during the runs.
# After the last round: the staging table's state, and the load average
# (the machine may be shared: say so next to the figures).
#
#   bench/audit_change_bench.sh                      8 clients, 10 s per run, 5 alternating rounds
#   CLIENTS=1 DURATION=5 ROUNDS=3 bench/audit_change_bench.sh
#   KEEP_SERVER=1 ...: do not stop the server at the end (profiling; prints how to reach it)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

members=${MEMBERS:-2000}
duration=${DURATION:-10}
rounds=${ROUNDS:-5}
clients=${CLIENTS:-8}

as_unprivileged_copy "MEMBERS DURATION ROUNDS CLIENTS KEEP_SERVER" bench/audit_change_bench.sh

work=$(mktemp -d /tmp/loyalty-benchrun.XXXXXX)
trap 'stop_server "$work/data"; rm -rf "$work"' EXIT
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$work/sock" PGPORT=55497 PGUSER=postgres PGDATABASE=postgres
# no checkpoint during the runs (at 4,000 calls a second of about 2.7 kB of
# WAL each, the default max_wal_size of 1 GB is reached in about 90 s: a
# checkpoint, and the full-page images after it, in whichever round): one
# CHECKPOINT before the warm-up, none after
start_server "$work/data" "$PGHOST" "$PGPORT" "shared_buffers = 256MB" "synchronous_commit = on" \
    "max_wal_size = 16GB" "checkpoint_timeout = 1h"

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

cat >"$work/with.sql" <<'SQL'
\set n random(1, :members)
BEGIN;
SELECT loyalty.points_accrue(gen_random_uuid()::text, (SELECT member_id FROM public.bench_ids WHERE n = :n), 'bac', 10, 'adjustment');
END;
SQL

# the server's CPU time so far, in clock ticks: the postmaster and its
# reaped children (the runs' backends, autovacuum workers) and its living
# children (the audit writers, the WAL writer, the checkpointer, ...);
# pgbench's own time is not in it, nor the other helpers'
cpu_ticks() {
    local pm
    pm=$(head -1 "$work/data/postmaster.pid")
    { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat"
      for c in $(ps -o pid= --ppid "$pm"); do
          awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null || true
      done; } | awk '{ t += $1 } END { print t }'
}
# wait until the run's backends have exited and been reaped by the
# postmaster (their CPU time is then in its children's time): no client
# backend process left (ps, not psql, which would start one)
backends_gone() {
    local i pm
    pm=$(head -1 "$work/data/postmaster.pid")
    for i in $(seq 1 2000); do
        ps -o args= --ppid "$pm" | grep -q '\[local\]' || return 0
    done
    die "the run's backends did not exit"
}
wal() { psql -X -At -F ' ' -c "SELECT wal_bytes, wal_records FROM pg_stat_wal"; }
run() {  # with|without: prints tps, server CPU ms and WAL bytes and records per transaction
    local opts="" out t0 t1 tx w0 r0 w1 r1
    [ "$1" = without ] && opts="-c loyalty.audit_changes_bench_off=on"
    backends_gone
    read -r w0 r0 <<<"$(wal)"
    t0=$(cpu_ticks)
    out=$(PGOPTIONS="$opts" pgbench -n -M prepared -c "$clients" -j "$(( clients < 4 ? clients : 4 ))" -T "$duration" \
        -D members="$n" -f "$work/with.sql" 2>&1)
    backends_gone
    t1=$(cpu_ticks)
    read -r w1 r1 <<<"$(wal)"
    tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
    awk -v tps="$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -1)" -v d="$((t1 - t0))" \
        -v hz="$(getconf CLK_TCK)" -v tx="$tx" -v wb="$((w1 - w0))" -v wr="$((r1 - r0))" \
        'BEGIN { printf "%s %.4f %.0f %.1f\n", tps, d * 1000 / hz / tx, wb / tx, wr / tx }'
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "members: $n, $clients clients, $duration s per run, $rounds alternating rounds (medians)"
# the switch is honoured: a call without stages no record, a call with one
probe() {  # PGOPTIONS: prints the records the call staged
    psql -q -X -At -v ON_ERROR_STOP=1 <<'SQL' | tail -1
BEGIN;
SELECT loyalty.points_accrue('probe', (SELECT member_id FROM public.bench_ids WHERE n = 1), 'bac', 1, 'adjustment') IS NOT NULL;
SELECT count(*) FROM loyalty.audit_change_staging WHERE xmin = pg_catalog.pg_current_xact_id()::xid;
ROLLBACK;
SQL
}
[ "$(PGOPTIONS="" probe)" = 1 ] || die "a call with its record staged no record"
[ "$(PGOPTIONS="-c loyalty.audit_changes_bench_off=on" probe)" = 0 ] \
    || die "loyalty.audit_changes_bench_off was not honoured"
# a warm-up of each, not counted (the first run after the load pays for
# the caches, the writers' start and the full-page images of the first
# change of each page after the load's checkpoint)
psql -q -X -c CHECKPOINT
duration_saved=$duration; duration=$(( duration < 5 ? duration : 5 ))
run with >/dev/null; run without >/dev/null
duration=$duration_saved
withs="" withouts="" ratios="" cws="" cwos="" cratios="" wws="" wwos=""
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then read -r a ca wa ra <<<"$(run with)"; read -r b cb wb rb <<<"$(run without)"
    else read -r b cb wb rb <<<"$(run without)"; read -r a ca wa ra <<<"$(run with)"; fi
    e=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
    ce=$(awk -v a="$ca" -v b="$cb" 'BEGIN { printf "%.3f", b / a }')
    echo "round $r: with record $a tps ($ca ms CPU, $wa B and $ra records of WAL per call), without $b tps ($cb ms, $wb B, $rb records), with/without $e (by CPU per call $ce)"
    withs="$withs $a" withouts="$withouts $b" ratios="$ratios $e"
    cws="$cws $ca" cwos="$cwos $cb" cratios="$cratios $ce" wws="$wws $wa" wwos="$wwos $wb"
done
echo "median: with record $(median <<<"$withs") tps, without $(median <<<"$withouts") tps," \
     "with/without $(median <<<"$ratios") (target >= 0.9)"
echo "median server CPU per call: with record $(median <<<"$cws") ms, without $(median <<<"$cwos") ms," \
     "without/with $(median <<<"$cratios")"
echo "median WAL per call (pg_stat_wal; no checkpoint during the runs): with record $(median <<<"$wws") B," \
     "without $(median <<<"$wwos") B"
psql -X -At -F ' ' -c "SELECT 'staging: live', n_live_tup, 'dead', n_dead_tup, 'size', pg_size_pretty(pg_total_relation_size(relid)), 'autovacuums', autovacuum_count FROM pg_stat_user_tables WHERE relid = 'loyalty.audit_change_staging'::regclass"
psql -X -At -c "SELECT 'chain: ' || count(*) || ' records, audit_verify problems: ' || (SELECT count(*) FROM loyalty.audit_verify()) FROM loyalty.audit_log"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${KEEP_SERVER:-}" ]; then
    trap - EXIT
    echo "server kept: PGHOST=$PGHOST PGPORT=$PGPORT; stop with: $STAGED_BINDIR/pg_ctl -D $work/data stop; rm -rf $work"
fi

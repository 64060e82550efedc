#!/usr/bin/env bash
# Store replica benchmark (docs/replication.md, "Measured").  One HQ and
# two store servers on this machine, each store subscribed to its
# publication (loyalty.store_subscribe) and, as the floor, to a plain
# publication of a plain table (floor_balance) updated at the same rate.
#
#   1. latency: HQ commit -> row applied at the store, p50/p95 in ms, at a
#      steady rate of loyalty.points_accrue() calls (pgbench -R), against the same
#      rate of plain single-row updates;
#   2. catch-up: a store's subscription is disabled, a backlog of accruals
#      is committed at HQ, the subscription is enabled: transactions per
#      second applied until the store has caught up, against the same for
#      the plain table;
#   3. HQ CPU per store: CPU time of each store's walsender (its decoder)
#      per second of the latency phase, against a walsender whose
#      publication holds only the plain table (the pure decoding cost: a
#      walsender decodes all of the database's WAL whatever it publishes).
#   4. store catch-up at HQ (issue 19): HQ's subscription to store ba's
#      outbox is disabled, the store records a backlog of offline accruals
#      (loyalty.store_points_accrue, one transaction each), the subscription
#      is enabled: events per second until HQ has decided every one (a row
#      in loyalty.outbox_result), against a plain insert-only subscription
#      at HQ of the same number of rows of the outbox's shape, one
#      transaction each (the floor).  BENCH_ROUNDS rounds, alternating
#      which goes first; the ratio is the median of the rounds' ratios.
#
#   bench/replica_bench.sh                (as root or an unprivileged user)
#   BENCH_SECONDS=20 BENCH_RATE=300 BENCH_BACKLOG=5000 bench/replica_bench.sh
#   BENCH_PHASES=4 BENCH_OUTBOX=20000 BENCH_ROUNDS=5 bench/replica_bench.sh
#   BENCH_PERF=/tmp/p.data: perf record -g on HQ's apply worker and applier
#   (phase 4); BENCH_PSS=/tmp/pss.txt: HQ runs pg_stat_statements
#   (track = all) and phase 4 writes its top statements there
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

as_unprivileged_copy "BENCH_SECONDS BENCH_RATE BENCH_BACKLOG BENCH_PHASES BENCH_OUTBOX BENCH_ROUNDS BENCH_PERF BENCH_PSS" bench/replica_bench.sh

secs=${BENCH_SECONDS:-10}
rate=${BENCH_RATE:-200}
backlog=${BENCH_BACKLOG:-10000}
phases=${BENCH_PHASES:-1 2 4}
outbox=${BENCH_OUTBOX:-10000}
rounds=${BENCH_ROUNDS:-5}
work=$(mktemp -d /tmp/loyalty-benchrun.XXXXXX)
sock=$work/sock
cleanup() { for n in hq ba bb; do stop_server "$work/$n"; done; rm -rf "$work"; }
trap cleanup EXIT
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH" PGHOST=$sock PGUSER=postgres
pss=()
[ -n "${BENCH_PSS:-}" ] && pss=("shared_preload_libraries = 'pg_cron,loyalty,pg_stat_statements'" "pg_stat_statements.track = all")
# wal_retrieve_retry_interval: the launcher starts a subscription's worker
# at most once per interval (5 s by default), so phase 4's enable after the
# other subscription's disable waited up to 5 s for its worker
start_server "$work/hq" "$sock" 54381 "shared_buffers = 128MB" "wal_retrieve_retry_interval = '100ms'" "${pss[@]}"
start_server "$work/ba" "$sock" 54382 "wal_retrieve_retry_interval = '100ms'"
start_server "$work/bb" "$sock" 54383 "wal_retrieve_retry_interval = '100ms'"
hq() { psql -X -q -v ON_ERROR_STOP=1 -p 54381 -d bench "$@"; }
st() { local p=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -p "$p" -d bench "$@"; }
for p in 54381 54382 54383; do psql -X -q -p $p -d postgres -c 'CREATE DATABASE bench'; done

hq >/dev/null <<'SQL'
CREATE EXTENSION loyalty;
SELECT loyalty.store_create(gen_random_uuid()::text, 'ba', 'Bench A', 'bay', 'south', 'Asia/Shanghai'),
       loyalty.store_create(gen_random_uuid()::text, 'bb', 'Bench B', 'bay', 'south', 'Asia/Shanghai');
CREATE TABLE bench_member AS
  SELECT i, (loyalty.member_enroll(gen_random_uuid()::text, 'ba', 'Bench ' || i)).member_id FROM generate_series(1, 1000) i;
ALTER TABLE bench_member ADD PRIMARY KEY (i);
CREATE TABLE floor_balance (i int PRIMARY KEY, balance bigint NOT NULL, updated_at timestamptz NOT NULL);
INSERT INTO floor_balance SELECT i, 0, now() FROM generate_series(1, 1000) i;
CREATE PUBLICATION floor_pub FOR TABLE floor_balance;
SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'ba'), loyalty.replica_store_add(gen_random_uuid()::text, 'bb');
SQL
hq -c "SELECT loyalty.replica_slot_create('ba')" >/dev/null
hq -c "SELECT loyalty.replica_slot_create('bb')" >/dev/null
for s in ba:54382 bb:54383; do
    code=${s%%:*} port=${s##*:}
    st "$port" >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION loyalty;
SELECT loyalty.store_subscribe('host=$sock port=54381 dbname=bench user=postgres', '$code');
CREATE TABLE floor_balance (i int PRIMARY KEY, balance bigint NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE lat (kind text NOT NULL, us bigint NOT NULL);
CREATE FUNCTION lat_loyalty() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS \$\$
BEGIN
    INSERT INTO lat VALUES ('loyalty', (extract(epoch FROM clock_timestamp() - NEW.updated_at) * 1000000)::bigint);
    RETURN NEW;
END \$\$;
CREATE FUNCTION lat_floor() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS \$\$
BEGIN
    INSERT INTO lat VALUES ('floor', (extract(epoch FROM clock_timestamp() - NEW.updated_at) * 1000000)::bigint);
    RETURN NEW;
END \$\$;
CREATE TRIGGER lat AFTER UPDATE ON loyalty.point_balance FOR EACH ROW EXECUTE FUNCTION lat_loyalty();
ALTER TABLE loyalty.point_balance ENABLE REPLICA TRIGGER lat;
CREATE TRIGGER lat AFTER UPDATE ON floor_balance FOR EACH ROW EXECUTE FUNCTION lat_floor();
ALTER TABLE floor_balance ENABLE REPLICA TRIGGER lat;
SQL
    st "$port" -c "SET client_min_messages = warning" -c "CREATE SUBSCRIPTION floor_$code CONNECTION 'host=$sock port=54381 dbname=bench user=postgres' PUBLICATION floor_pub"
done

# wait_until PORT SQL: poll (bench only) until the query returns t
wait_until() {
    local i
    for i in $(seq 1 600); do
        [ "$(st "$1" -At -c "$2")" = t ] && return 0
        sleep 0.05
    done
    die "timed out: $2"
}
for p in 54382 54383; do
    wait_until $p "SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')"
done
hq -c 'SELECT count(loyalty.points_accrue('"'seed-'"' || i, member_id, '"'ba'"', 100000, '"'adjustment'"')) FROM bench_member' >/dev/null
hq -c 'VACUUM ANALYZE' >/dev/null

cat >"$work/points_accrue.sql" <<'SQL'
\set m random(1, 1000)
\set k random(1, 1000000000000)
SELECT loyalty.points_accrue('b-' || :client_id || '-' || :k, member_id, 'ba', 10, 'stay') FROM bench_member WHERE i = :m;
SQL
cat >"$work/floor.sql" <<'SQL'
\set m random(1, 1000)
UPDATE floor_balance SET balance = balance + 10, updated_at = now() WHERE i = :m;
SQL

# cpu_ticks APPNAME: utime+stime of the walsender serving APPNAME at HQ
cpu_ticks() {
    local pid
    pid=$(hq -At -c "SELECT pid FROM pg_stat_replication WHERE application_name = '$1'")
    awk '{print $14 + $15}' "/proc/$pid/stat"
}
hz=$(getconf CLK_TCK)
# total KIND [hq]: the SQL expression of the replicated sum (or its value at HQ)
total() {
    local e="(SELECT sum(balance) FROM loyalty.point_balance)"
    [ "$1" = floor ] && e="(SELECT sum(balance) FROM floor_balance)"
    if [ "${2:-}" = hq ]; then hq -At -c "SELECT $e"; else echo "$e"; fi
}
tps_of() { sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$1" | head -1; }

if [[ " $phases " == *" 1 "* ]]; then
echo "== 1. HQ commit -> applied at the store, steady load of $rate tps for ${secs}s, 2 clients"
for kind in loyalty floor; do
    for p in 54382 54383; do st $p -c 'TRUNCATE lat'; done
    declare -A t0=()
    for a in loyalty_store_ba loyalty_store_bb floor_ba floor_bb; do t0[$a]=$(cpu_ticks $a); done
    script=$work/points_accrue.sql; [ $kind = floor ] && script=$work/floor.sql
    pgbench -n -p 54381 -c 2 -j 2 -T "$secs" -R "$rate" -f "$script" bench >"$work/$kind.pgbench" 2>&1 \
        || { cat "$work/$kind.pgbench"; die "pgbench failed"; }
    wait_until 54382 "SELECT (SELECT count(*) FROM lat) > 0"
    for p in 54382 54383; do wait_until $p "SELECT $(total $kind hq) = $(total $kind)"; done
    read -r p50 p95 n < <(st 54382 -At -F ' ' -c "SELECT round(percentile_disc(0.5) WITHIN GROUP (ORDER BY us) / 1000.0, 2),
        round(percentile_disc(0.95) WITHIN GROUP (ORDER BY us) / 1000.0, 2), count(*) FROM lat WHERE kind = '$kind'")
    echo "$kind tps=$(tps_of "$work/$kind.pgbench") rows=$n p50_ms=$p50 p95_ms=$p95"
    eval "${kind}_p50=$p50 ${kind}_p95=$p95"
    for a in loyalty_store_ba loyalty_store_bb floor_ba floor_bb; do
        t1=$(cpu_ticks $a)
        echo "   walsender $a: $(awk -v d=$((t1 - t0[$a])) -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.1f%% of a core", 100 * d / hz / s}')"
    done
done
awk -v a="$loyalty_p50" -v b="$floor_p50" -v c="$loyalty_p95" -v d="$floor_p95" \
    'BEGIN {printf "latency ratio loyalty/floor: p50 %.2f, p95 %.2f\n", a / b, c / d}'

fi
if [[ " $phases " == *" 2 "* ]]; then
echo "== 2. catch-up after a backlog of $backlog transactions"
for kind in loyalty floor; do
    sub=loyalty_store_ba; [ $kind = floor ] && sub=floor_ba
    script=$work/points_accrue.sql; [ $kind = floor ] && script=$work/floor.sql
    st 54382 -c "ALTER SUBSCRIPTION $sub DISABLE"
    wait_until 54382 "SELECT pid IS NULL FROM pg_stat_subscription WHERE subname = '$sub'"
    pgbench -n -p 54381 -c 2 -j 2 -t $((backlog / 2)) -f "$script" bench >"$work/$kind.backlog" 2>&1 \
        || { cat "$work/$kind.backlog"; die "pgbench failed"; }
    target=$(hq -At -c "SELECT $(total $kind)")
    start=$(date +%s.%N)
    st 54382 -c "ALTER SUBSCRIPTION $sub ENABLE"
    wait_until 54382 "SELECT $(total $kind) = $target"
    end=$(date +%s.%N)
    r=$(awk -v n="$backlog" -v a="$start" -v b="$end" 'BEGIN {printf "%.0f", n / (b - a)}')
    echo "$kind backlog=$backlog caught_up_s=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') rate_tps=$r (HQ produced it at $(tps_of "$work/$kind.backlog") tps)"
    eval "${kind}_rate=$r"
done
awk -v a="$loyalty_rate" -v b="$floor_rate" 'BEGIN {printf "catch-up ratio loyalty/floor: %.2f\n", a / b}'
fi

if [[ " $phases " == *" 4 "* ]]; then
echo "== 4. store catch-up at HQ: $outbox queued outbox events of store ba, $rounds alternating rounds"
# HQ subscribes to ba's outbox, and (the floor) to a plain insert-only
# publication of a plain table of the outbox's shape at the store
st 54382 >/dev/null <<'SQL'
CREATE TABLE floor_event (LIKE loyalty.outbox);
ALTER TABLE floor_event ADD PRIMARY KEY (event_id);
CREATE SEQUENCE floor_event_seq;
CREATE PUBLICATION floor_out FOR TABLE floor_event WITH (publish = 'insert');
SQL
hq >/dev/null <<'SQL'
CREATE TABLE floor_event (LIKE loyalty.outbox);
ALTER TABLE floor_event ADD PRIMARY KEY (event_id);
SQL
hq -c "SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'ba', 'host=$sock port=54382 dbname=bench user=postgres')" >/dev/null
hq -c "SET client_min_messages = warning" -c "CREATE SUBSCRIPTION floor_out_ba CONNECTION 'host=$sock port=54382 dbname=bench user=postgres' PUBLICATION floor_out"
wait_hq() {
    local i
    for i in $(seq 1 12000); do
        [ "$(hq -At -c "$1")" = t ] && return 0
        sleep 0.02
    done
    die "timed out at HQ: $1"
}
wait_hq "SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')"
# the store's members: those HQ replicated to it
st 54382 -c "CREATE TABLE bench_member AS SELECT row_number() OVER (ORDER BY member_id) AS i, member_id FROM loyalty.member" >/dev/null
cat >"$work/store_accrue.sql" <<'SQL'
\set m random(1, 1000)
SELECT loyalty.store_points_accrue(gen_random_uuid()::text, member_id, 10, 'stay', 'folio-' || gen_random_uuid()) FROM bench_member WHERE i = :m;
SQL
cat >"$work/store_floor.sql" <<'SQL'
\set m random(1, 1000)
INSERT INTO floor_event SELECT 'ba-1-' || nextval('floor_event_seq'), 'ba', 1, currval('floor_event_seq'), 'accrual', member_id,
       pg_catalog.jsonb_build_object('points', 10, 'source', 'stay'), gen_random_uuid()::text, now(), session_user
  FROM bench_member WHERE i = :m;
SQL
# catch_up KIND: queue a backlog with HQ's subscription off, enable it, print events/s
catch_up() {
    local kind=$1 sub count script target start end
    sub=loyalty_outbox_ba count="SELECT count(*) FROM loyalty.outbox_result WHERE store_code = 'ba'" script=$work/store_accrue.sql
    [ "$kind" = floor ] && sub=floor_out_ba count="SELECT count(*) FROM floor_event" script=$work/store_floor.sql
    hq -c "ALTER SUBSCRIPTION $sub DISABLE"
    wait_hq "SELECT pid IS NULL FROM pg_stat_subscription WHERE subname = '$sub'"
    target=$(( $(hq -At -c "$count") + outbox ))
    pgbench -n -p 54382 -c 2 -j 2 -t $((outbox / 2)) -f "$script" bench >"$work/$kind.outbox" 2>&1 \
        || { cat "$work/$kind.outbox" >&2; die "pgbench failed"; }
    hq -c CHECKPOINT
    start=$(date +%s.%N)
    hq -c "ALTER SUBSCRIPTION $sub ENABLE"
    if [ -n "${BENCH_PERF:-}" ] && [ "$kind" = loyalty ]; then
        sleep 0.5
        # the apply worker (receiving) and the replica applier (applying)
        pid=$(hq -At -c "SELECT string_agg(pid::text, ',') FROM pg_stat_activity
                          WHERE pid IN (SELECT pid FROM pg_stat_subscription WHERE subname = '$sub')
                             OR backend_type = 'loyalty replica applier'")
        perf record -g -p "$pid" -o "$BENCH_PERF" -- sleep 2 >/dev/null 2>&1 || true
        # symbols now, while the staged binaries exist
        perf report -i "$BENCH_PERF" --no-children --sort pid,dso,sym --stdio >"$BENCH_PERF.self.txt" 2>&1 || true
        perf report -i "$BENCH_PERF" --children --sort pid,sym --stdio -g none >"$BENCH_PERF.children.txt" 2>&1 || true
    fi
    wait_hq "SELECT ($count) >= $target"
    end=$(date +%s.%N)
    awk -v n="$outbox" -v a="$start" -v b="$end" 'BEGIN {printf "%.0f", n / (b - a)}'
}
ratios=()
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then l=$(catch_up loyalty); f=$(catch_up floor)
    else f=$(catch_up floor); l=$(catch_up loyalty); fi
    ratio=$(awk -v a="$l" -v b="$f" 'BEGIN {printf "%.3f", a / b}')
    ratios+=("$ratio")
    echo "round $r: loyalty ${l} events/s, floor ${f} rows/s, loyalty/floor $ratio (load $(uptime | sed 's/.*load average: //'))"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR] = $1} END {printf "store catch-up ratio loyalty/floor (median of %d rounds, min %s max %s): %s\n", NR, a[1], a[NR], a[int((NR + 1) / 2)]}'
hq -At -c "SELECT status, count(*) FROM loyalty.outbox_result WHERE store_code = 'ba' GROUP BY 1"
if [ -n "${BENCH_PSS:-}" ]; then
    hq -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
    hq -P pager=off -c "SELECT calls, round(total_exec_time::numeric, 0) AS exec_ms, round(total_plan_time::numeric, 0) AS plan_ms,
        round((total_exec_time / calls)::numeric, 3) AS ms_call, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query
        FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 40" >"$BENCH_PSS" 2>&1 || true
fi
fi

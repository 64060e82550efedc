#!/usr/bin/env bash
# Scale benchmark (issue 19's scale target, docs/performance.md, "Scale"):
# "at 10,000,000 members and 50,000,000 ledger entries, accrue, benefits()
# and frontdesk_lookup each within 10% of their 10,000-member figures", and
# the BI scan of bench/privacy.sh re-measured there.
#
#   bench/scale_bench.sh                      10,000 vs 10,000,000 members (hours of loading, ~tens of GB)
#   LARGE_MEMBERS=200000 bench/scale_bench.sh  a validation run (minutes)
#   SMALL_MEMBERS=10000 LARGE_MEMBERS=10000000 ENTRIES_PER_MEMBER=5 \
#     BENCH_ROUNDS=3 BENCH_SECONDS=10 BENCH_CLIENTS=8 SCAN_ROUNDS=3 \
#     BENCH_SHARED_BUFFERS=256MB bench/scale_bench.sh
#   BENCH_HOLD_FILE=/tmp/go bench/scale_bench.sh   load, then wait until
#                                             /tmp/go exists before measuring
#                                             (so that the runs fall on a quiet
#                                             machine after hours of loading)
#
# One server, two databases: "small" (SMALL_MEMBERS) and "large"
# (LARGE_MEMBERS), each with ENTRIES_PER_MEMBER ledger entries per member.
# The data are loaded as a migration or pg_restore would load them:
# set-based INSERT ... SELECT generate_series straight into the
# extension's tables, as the superuser, the rows first and then the keys,
# indexes and foreign keys of the loaded tables, rebuilt from their own
# definitions (LOAD_INDEXES=after, the default: random uuid keys inserted
# one by one into indexes larger than the cache took 115 us a row, 10M
# members' profiles 19 minutes); LOAD_INDEXES=before keeps them in place
# through the load.  Triggers fire as in any insert.  The time of each
# step is printed.  Per member n: member_id md5('m' || n)::uuid, a deterministic
# card number (bench_card(n), Luhn check digit), a profile, the profiling
# consent (the BI view lists only consenting members), four tiers, 1% with
# an unresolved risk tag; a ledger of ENTRIES_PER_MEMBER entries: accruals
# of c, 2c, ... points (one active lot each, expiring in a year) and, when
# there are two entries or more, a last entry that redeems the whole first
# lot (one draw; the first lot is exhausted, so it leaves the spend
# indexes), with the idempotency record of every entry in
# loyalty.ledger_request and the stored balance in loyalty.point_balance.
# VACUUM (ANALYZE) sets the visibility maps; after the runs,
# loyalty.ledger_check() must return no rows in both databases (else the
# script fails).  Load times
# and database sizes are printed.
#
# Then BENCH_ROUNDS rounds, alternating small then large, of BENCH_SECONDS
# pgbench runs (-M prepared, BENCH_CLIENTS clients, random member) of:
#   accrue    loyalty.points_accrue with a fresh idempotency key (superuser,
#             as bench/ledger_bench.sh)
#   benefits  loyalty.benefits(member, 'sza') as a front desk login
#   lookup    loyalty.frontdesk_lookup(card) as a front desk login (audited:
#             the audit writer pool of shared_preload_libraries, one
#             record committed per read; each client a desk of its own as in
#             bench/audit_bench.sh, the lookup budget raised)
# and SCAN_ROUNDS rounds of the full scan of loyalty.bi_members (privacy.sh
# run 2) as a BI login.  Prints per measure the median at each size and the
# ratio large/small (target >= 0.9 for TPS; for the scan, the time ratio is
# printed per member, target: the time grows no faster than the members),
# with the load average before and after.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

small=${SMALL_MEMBERS:-10000}
large=${LARGE_MEMBERS:-10000000}
entries=${ENTRIES_PER_MEMBER:-5}
rounds=${BENCH_ROUNDS:-3}
secs=${BENCH_SECONDS:-10}
clients=${BENCH_CLIENTS:-8}
scan_rounds=${SCAN_ROUNDS:-3}
shared_buffers=${BENCH_SHARED_BUFFERS:-256MB}
port=${BENCH_PORT:-55497}
hold=${BENCH_HOLD_FILE:-}
index_mode=${LOAD_INDEXES:-after}

as_unprivileged_copy "SMALL_MEMBERS LARGE_MEMBERS ENTRIES_PER_MEMBER BENCH_ROUNDS BENCH_SECONDS BENCH_CLIENTS SCAN_ROUNDS BENCH_SHARED_BUFFERS BENCH_PORT BENCH_HOLD_FILE LOAD_INDEXES" \
    bench/scale_bench.sh

[ "$entries" -ge 1 ] || die "ENTRIES_PER_MEMBER must be at least 1"
case "$index_mode" in after|before) ;; *) die "LOAD_INDEXES must be after or before" ;; esac
work=$(mktemp -d /tmp/loyalty-benchrun.XXXXXX)
trap 'stop_server "$work/data"; rm -rf "$work"' EXIT
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$work/sock" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
start_server "$work/data" "$PGHOST" "$PGPORT" "shared_buffers = $shared_buffers" "synchronous_commit = on" \
    "max_wal_size = 8GB" "checkpoint_timeout = 30min" "maintenance_work_mem = 1GB" "max_connections = 100"

load() { uptime | sed 's/.*load average: //'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" -v d="${2:-1}" 'BEGIN { printf "%.*f", d, b - a }'; }
echo "load average before: $(load)"
echo "small: $small members, large: $large members, $entries ledger entries per member; shared_buffers $shared_buffers"

# setup DB PREFIX: the extension, stores, benefit catalogue and staff (the
# logins are cluster-wide: each database has its own, PREFIX_desk_0..N-1
# and PREFIX_bi, all granted to the login "bench")
setup() {
    psql -q -X -d postgres -c "CREATE DATABASE $1" >/dev/null
    psql -q -X -v ON_ERROR_STOP=1 -d "$1" >/dev/null <<SQL
CREATE EXTENSION loyalty;
-- the server's key file (made by the first database, taken by the second):
-- the pseudonyms of the BI views need it
SELECT loyalty.key_create();
SELECT loyalty.store_create(gen_random_uuid()::text, 'sza', 'Bench A', 'bay', 'south', 'Asia/Shanghai'),
       loyalty.store_create(gen_random_uuid()::text, 'szb', 'Bench B', 'bay', 'west', 'Asia/Urumqi');
SELECT loyalty.store_create(gen_random_uuid()::text, 'o' || i, 'Other ' || i, 'bay', 'east', 'Asia/Shanghai') FROM generate_series(1, 20) i;
SELECT loyalty.staff_create(gen_random_uuid()::text, '$2_desk_' || i, 'sza', 'frontdesk') FROM generate_series(0, $clients - 1) i;
SELECT loyalty.staff_create(gen_random_uuid()::text, '$2_bi', NULL, 'bi');
DO \$\$
BEGIN
    FOR i IN 0..$clients - 1 LOOP
        EXECUTE format('GRANT $2_desk_%s TO bench', i);
    END LOOP;
END
\$\$;
-- the catalogue of bench/benefit_bench.sh
\\i $here/bench/benefit_catalogue.sql
-- member n's card number: 9 and n in 10 digits, and the Luhn check digit
CREATE FUNCTION public.bench_card(n bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS \$f\$
    SELECT b || ((10 - sum(CASE WHEN (11 - i) % 2 = 0
                                THEN (substr(b, i, 1)::int * 2) % 10 + (substr(b, i, 1)::int * 2) / 10
                                ELSE substr(b, i, 1)::int END) % 10) % 10)::text
      FROM (SELECT '9' || lpad(n::text, 10, '0') AS b) s, generate_series(1, 11) i
     GROUP BY b
\$f\$;
GRANT EXECUTE ON FUNCTION public.bench_card(bigint) TO PUBLIC;
SQL
}

# the tables the load writes
loaded="'loyalty.member', 'loyalty.member_profile', 'loyalty.member_consent', 'loyalty.risk_tag',
        'loyalty.point_entry', 'loyalty.point_lot', 'loyalty.point_draw', 'loyalty.point_balance',
        'loyalty.ledger_request'"
# keys_drop DB: record the definitions of the loaded tables' keys (primary,
# unique), their other indexes and every foreign key on or to them in
# public.bench_ddl, then drop them (foreign keys first)
keys_drop() {
    psql -q -X -v ON_ERROR_STOP=1 -d "$1" >/dev/null <<SQL
CREATE TABLE public.bench_ddl (ord int, sql text);
WITH t AS (SELECT unnest(ARRAY[$loaded])::regclass AS rel)
INSERT INTO public.bench_ddl
SELECT 3, format('ALTER TABLE %s ADD CONSTRAINT %I %s', k.conrelid::regclass, k.conname, pg_get_constraintdef(k.oid))
  FROM pg_constraint k WHERE k.contype = 'f' AND (k.conrelid IN (SELECT rel FROM t) OR k.confrelid IN (SELECT rel FROM t))
UNION ALL
SELECT 1, format('ALTER TABLE %s ADD CONSTRAINT %I %s', k.conrelid::regclass, k.conname, pg_get_constraintdef(k.oid))
  FROM pg_constraint k WHERE k.contype IN ('p', 'u') AND k.conrelid IN (SELECT rel FROM t)
UNION ALL
SELECT 2, pg_get_indexdef(i.indexrelid)
  FROM pg_index i WHERE i.indrelid IN (SELECT rel FROM t)
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid);
DO \$\$
DECLARE r record;
BEGIN
    FOR r IN SELECT k.conrelid::regclass AS rel, k.conname, k.contype FROM pg_constraint k
              WHERE k.contype IN ('f', 'p', 'u')
                AND (k.conrelid IN (SELECT unnest(ARRAY[$loaded])::regclass)
                     OR (k.contype = 'f' AND k.confrelid IN (SELECT unnest(ARRAY[$loaded])::regclass)))
              ORDER BY k.contype = 'f' DESC LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.rel, r.conname);
    END LOOP;
    FOR r IN SELECT i.indexrelid::regclass AS idx FROM pg_index i
              WHERE i.indrelid IN (SELECT unnest(ARRAY[$loaded])::regclass) LOOP
        EXECUTE format('DROP INDEX %s', r.idx);
    END LOOP;
END
\$\$;
SQL
}
# keys_rebuild DB: re-create what keys_drop dropped, keys first, foreign
# keys last (each validated against the loaded rows)
keys_rebuild() {
    local sql
    while IFS= read -r sql; do
        psql -q -X -v ON_ERROR_STOP=1 -d "$1" -c "SET maintenance_work_mem = '1GB'" -c "$sql" >/dev/null \
            || die "$1: $sql failed"
    done < <(psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "SELECT sql FROM public.bench_ddl ORDER BY ord, sql")
    psql -q -X -v ON_ERROR_STOP=1 -d "$1" -c "DROP TABLE public.bench_ddl" >/dev/null
}

# fill DB MEMBERS: the migration-style load, step by step with its time
fill() {
    local db=$1 m=$2 e=$entries t0 t step
    t0=$(now)
    # the ledger per member n, with c = 10 + n % 90: entries k = 1 .. r
    # accrue c * k (lot k), and with e >= 2 entry e redeems lot 1 (c points)
    local r=$(( e >= 2 ? e - 1 : 1 ))
    local bal="(10 + n % 90) * $r * ($r + 1) / 2 - CASE WHEN $e >= 2 THEN 10 + n % 90 ELSE 0 END"
    if [ "$index_mode" = after ]; then
        t=$(now); keys_drop "$db"; printf '  %-8s %-16s %8s s\n' "$db" "drop keys" "$(elapsed "$t")"
    fi
    while IFS='|' read -r step sql; do
        [ -n "$step" ] || continue
        if [ "$step" = vacuum ] && [ "$index_mode" = after ]; then
            t=$(now); keys_rebuild "$db"; printf '  %-8s %-16s %8s s\n' "$db" "rebuild keys" "$(elapsed "$t")"
        fi
        t=$(now)
        psql -q -X -v ON_ERROR_STOP=1 -d "$db" -c "SET synchronous_commit = off" -c "$sql" >/dev/null \
            || die "$db: loading $step failed"
        printf '  %-8s %-16s %8s s\n' "$db" "$step" "$(elapsed "$t")"
    done <<SQL
member|INSERT INTO loyalty.member (member_id, card_no, home_store, tier, enrolled_at) SELECT md5('m' || n)::uuid, public.bench_card(n), CASE WHEN n % 5 = 0 THEN 'o' || (1 + n % 20) ELSE 'sza' END, (ARRAY['member', 'silver', 'gold', 'platinum'])[1 + n % 4], now() - (n % 3650) * interval '1 day' FROM generate_series(1, $m) n
member_profile|INSERT INTO loyalty.member_profile (member_id, full_name, phone, email, birth_date, gender) SELECT md5('m' || n)::uuid, '张' || (ARRAY['伟','芳','娜','敏'])[1 + n % 4], (13800000000 + n)::text, 'm' || n || '@example.com', DATE '1950-01-01' + (n % 20000), (ARRAY['female','male'])[1 + n % 2] FROM generate_series(1, $m) n
member_consent|INSERT INTO loyalty.member_consent (member_id, purpose, granted, notice_version) SELECT md5('m' || n)::uuid, 'profiling', true, 'bench' FROM generate_series(1, $m) n
risk_tag|INSERT INTO loyalty.risk_tag (member_id, risk_code, store_code, note, raised_by) SELECT md5('m' || n)::uuid, 'unresolved_violation', 'szb', 'bench', 'postgres' FROM generate_series(1, $m, 100) n
point_entry|INSERT INTO loyalty.point_entry (entry_id, member_id, store_code, kind, points, balance_after, occurred_at, recorded_at, reference) SELECT md5('e' || n || '-' || k)::uuid, md5('m' || n)::uuid, 'sza', CASE WHEN k > $r THEN 'redeem' ELSE 'accrue' END, CASE WHEN k > $r THEN -(10 + n % 90) ELSE (10 + n % 90) * k END, CASE WHEN k > $r THEN $bal ELSE (10 + n % 90) * k * (k + 1) / 2 END, now() - ($e - k) * interval '30 days', now() - ($e - k) * interval '30 days', 'mig-' || n || '-' || k FROM generate_series(1, $m) n, generate_series(1, $e) k
point_lot|INSERT INTO loyalty.point_lot (lot_id, member_id, store_code, source, reference, points, remaining, state, earned_at, active_from, expires_at, entry_id) SELECT md5('l' || n || '-' || k)::uuid, md5('m' || n)::uuid, 'sza', 'stay', 'mig-' || n || '-' || k, (10 + n % 90) * k, CASE WHEN k = 1 AND $e >= 2 THEN 0 ELSE (10 + n % 90) * k END, 'active', now() - ($e - k) * interval '30 days', now() - ($e - k) * interval '30 days', now() + interval '1 year' - ($e - k) * interval '30 days', md5('e' || n || '-' || k)::uuid FROM generate_series(1, $m) n, generate_series(1, $r) k
point_draw|INSERT INTO loyalty.point_draw (entry_id, lot_id, points) SELECT md5('e' || n || '-' || $e)::uuid, md5('l' || n || '-1')::uuid, 10 + n % 90 FROM generate_series(1, $m) n WHERE $e >= 2
point_balance|INSERT INTO loyalty.point_balance (member_id, balance, last_activity_at, updated_at) SELECT md5('m' || n)::uuid, $bal, now(), now() FROM generate_series(1, $m) n
ledger_request|INSERT INTO loyalty.ledger_request (idem_key, operation, args, entry_id, lot_id, member_id, points, balance, created_at) SELECT 'mig-' || n || '-' || k, CASE WHEN k > $r THEN 'redeem' ELSE 'accrue' END, 'migrated', md5('e' || n || '-' || k)::uuid, CASE WHEN k > $r THEN NULL ELSE md5('l' || n || '-' || k)::uuid END, md5('m' || n)::uuid, CASE WHEN k > $r THEN -(10 + n % 90) ELSE (10 + n % 90) * k END, 0, now() FROM generate_series(1, $m) n, generate_series(1, $e) k
vacuum|VACUUM (ANALYZE)
SQL
    printf '  %-8s %-16s %8s s\n' "$db" "load in all" "$(elapsed "$t0")"
}

# check_ledger DB: loyalty.ledger_check() finds nothing (after the runs:
# at 10,000,000 members it reads every entry, lot and balance)
check_ledger() {
    local db=$1 t bad
    t=$(now)
    bad=$(psql -X -At -v ON_ERROR_STOP=1 -d "$db" -c 'SELECT count(*) FROM loyalty.ledger_check()') \
        || die "$db: ledger_check failed"
    printf '  %-8s %-16s %8s s  (%s violations)\n' "$db" "ledger_check" "$(elapsed "$t")" "$bad"
    [ "$bad" = 0 ] || { psql -X -d "$db" -c 'SELECT * FROM loyalty.ledger_check() LIMIT 10' >&2; die "$db: ledger_check reports $bad rows"; }
}

psql -q -X -c "CREATE ROLE bench LOGIN" >/dev/null
# the budget is the login's setting: a session's, also after SET ROLE
psql -q -X -c "ALTER ROLE bench SET loyalty.lookup_budget = 1000000" >/dev/null
echo "loading (step, database, seconds):"
setup small s
setup large l
fill small "$small"
fill large "$large"
# checkpoint once, so that the load's checkpoint does not fall in the runs
psql -q -X -c CHECKPOINT
psql -X -c "SELECT datname AS database, pg_size_pretty(pg_database_size(datname)) AS size,
                   pg_database_size(datname) AS bytes
              FROM pg_database WHERE datname IN ('small', 'large') ORDER BY 3"
psql -X -d large -c "SELECT c.relname, pg_size_pretty(pg_table_size(c.oid)) AS heap,
                            pg_size_pretty(pg_indexes_size(c.oid)) AS indexes
                       FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
                      WHERE s.nspname = 'loyalty' AND c.relkind = 'r'
                      ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 10"

# sanity: each operation works as its bench runs it, in both databases
for db in small large; do
    p=${db:0:1}
    rows=$(psql -X -At -d "$db" -U bench -c "SET ROLE ${p}_desk_0" -c "SELECT count(*) FROM loyalty.benefits(md5('m4')::uuid, 'sza')" | tail -1)
    hit=$(psql -X -At -d "$db" -U bench -c "SET ROLE ${p}_desk_0" -c "SELECT count(*) FROM loyalty.frontdesk_lookup(public.bench_card(5), 'bench')" | tail -1)
    [ "$hit" = 1 ] || die "$db: frontdesk_lookup of member 5's card found $hit rows"
    log "$db: benefits() of member 4 at sza: $rows rows; lookup of member 5's card: $hit row"
done

cat >"$work/accrue.sql" <<'SQL'
\set n random(1, :members)
SELECT loyalty.points_accrue(gen_random_uuid()::text, md5('m' || :n)::uuid, 'sza', 10, 'stay');
SQL
cat >"$work/benefits.sql" <<'SQL'
\set n random(1, :members)
SELECT pg_catalog.set_config('role', (:desk)::text || :client_id, false);
SELECT * FROM loyalty.benefits(md5('m' || :n)::uuid, 'sza');
SQL
cat >"$work/lookup.sql" <<'SQL'
\set n random(1, :members)
SELECT pg_catalog.set_config('role', (:desk)::text || :client_id, false);
SELECT * FROM loyalty.frontdesk_lookup(public.bench_card(:n), 'bench');
SQL

tps() {  # db members script user
    pgbench -n -M prepared -d "$1" -U "$4" -T "$secs" -c "$clients" -j "$clients" \
        -D members="$2" -D desk="${1:0:1}_desk_" -f "$work/$3.sql" 2>"$work/pgbench.err" \
        | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | grep . || { cat "$work/pgbench.err" >&2; die "pgbench $3 on $1 failed"; }
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

if [ -n "$hold" ]; then
    echo "loaded; holding until $hold exists ($(date -u +%H:%M:%S) UTC)"
    while [ ! -e "$hold" ]; do sleep 5; done
fi
echo
echo "load average before the runs: $(load)"
printf '%-9s %12s %12s %8s %8s %8s  (medians of %d alternating rounds of %d s, %d clients, -M prepared)\n' \
    measure small_tps large_tps ratio min max "$rounds" "$secs" "$clients"
for op in accrue benefits lookup; do
    user=bench
    [ "$op" = accrue ] && user=postgres
    ss="" ls="" rs=""
    for _ in $(seq 1 "$rounds"); do
        s=$(tps small "$small" "$op" "$user")
        l=$(tps large "$large" "$op" "$user")
        ss="$ss $s" ls="$ls $l" rs="$rs $(ratio "$l" "$s")"
    done
    printf '%-9s %12.1f %12.1f %8s %8s %8s  ratio large/small (target >= 0.90)\n' "$op" \
        "$(median <<<"$ss")" "$(median <<<"$ls")" "$(median <<<"$rs")" \
        "$(tr ' ' '\n' <<<"$rs" | grep . | sort -g | head -1)" "$(tr ' ' '\n' <<<"$rs" | grep . | sort -g | tail -1)"
done

# the BI scan of bench/privacy.sh (run 2): wall time of one full scan
bi_q="SELECT count(member_key), count(home_store), count(tier), count(gender), count(birth_decade), count(enrolled_year) FROM loyalty.bi_members"
scan_once() {  # db user: wall time in s
    local t
    t=$(now)
    psql -X -q -d "$1" -U "$2" -c "$bi_q" >/dev/null || die "BI scan on $1 failed"
    elapsed "$t" 3
}
scan_once small s_bi >/dev/null; scan_once large l_bi >/dev/null   # warm the cache
sts="" lts=""
for _ in $(seq 1 "$scan_rounds"); do
    sts="$sts $(scan_once small s_bi)" lts="$lts $(scan_once large l_bi)"
done
st=$(median <<<"$sts") lt=$(median <<<"$lts")
# per-member time ratio: (large time / large members) / (small time / small members); <= 1.1 is linear
pm=$(awk -v s="$st" -v l="$lt" -v sm="$small" -v lm="$large" 'BEGIN { if (s > 0) printf "%.2f", (l / lm) / (s / sm); else print "-" }')
printf '%-9s %12s %12s %8s  seconds per full scan (not tps), time large/small for %sx the members; per-member time ratio %s (target <= 1.10; median of %d rounds)\n' \
    bi_scan "$st" "$lt" "$(ratio "$lt" "$st")" "$(awk -v a="$large" -v b="$small" 'BEGIN { printf "%g", a / b }')" "$pm" "$scan_rounds"
echo "load average after: $(load)"
echo "ledger checks (step, database, seconds):"
check_ledger small
check_ledger large

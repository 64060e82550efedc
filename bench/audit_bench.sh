#!/usr/bin/env bash
# Audit benchmark (docs/audit.md, docs/performance.md): the audited front
# desk lookup through the shared writer pool (group commit) against the
# same lookup with its audit record switched off, and against the
# unaudited front-desk view read, in the same run on the same server, at
# 1, 8, 32 and 128 clients; alternating rounds, medians.
#
#   bench/audit_bench.sh                    2,000 members, 5 s per run (15 s at 128 clients), 3 rounds
#   MEMBERS=10000 DURATION=10 ROUNDS=5 CLIENT_COUNTS="1 8" bench/audit_bench.sh
#   WORKERS=32 bench/audit_bench.sh          max_worker_processes (default 8, the server default)
#
# Per client count and round, three pgbench runs, in turn:
#   view   loyalty.member_frontdesk by member (masks, RLS; not audited)
#   pool   loyalty.frontdesk_lookup by card (audited through the writer pool)
#   off    the same lookup with loyalty._audit replaced by a no-op (this
#          throwaway server only): "the same lookup with audit off"
# Each pgbench client acts as a front desk login of its own
# (bench_desk_<client id>, SET ROLE), as the desks of a chain do: the
# lookup budget counts a login's lookups of the last hour, which a single
# login making thousands of lookups a second would make the bottleneck.
# Ratios: pool/off (the issue's measure: the price of the audit record),
# pool/view; "errors" counts the pgbench clients aborted by an error (a
# refused audited read).  Targets (issue 13): pool/off >= 0.5 at 8
# clients, no error at 128 clients with max_worker_processes = 8.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

members=${MEMBERS:-2000}
duration=${DURATION:-5}
rounds=${ROUNDS:-3}
client_counts=${CLIENT_COUNTS:-1 8 32 128}
workers=${WORKERS:-8}

as_unprivileged_copy "MEMBERS DURATION ROUNDS CLIENT_COUNTS WORKERS" bench/audit_bench.sh

work=$(mktemp -d /tmp/loyalty-benchrun.XXXXXX)
trap 'stop_server "$work/data"; rm -rf "$work"' EXIT
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$work/sock" PGPORT=55498 PGUSER=postgres PGDATABASE=postgres
start_server "$work/data" "$PGHOST" "$PGPORT" "shared_buffers = 256MB" "synchronous_commit = on" \
    "max_worker_processes = $workers" "max_connections = 200"

log "loading $members members"
psql -q -X -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE EXTENSION loyalty;
SELECT loyalty.store_create(gen_random_uuid()::text, 'bau', 'Bench Audit', 'bay', 'south', 'Asia/Shanghai');
CREATE ROLE bench LOGIN;
-- the budget is the login's setting: a session's, also after SET ROLE
ALTER ROLE bench SET loyalty.lookup_budget = 1000000;
SELECT loyalty.staff_create(gen_random_uuid()::text, 'bench_desk_' || i, 'bau', 'frontdesk')
  FROM generate_series(0, 127) i;
DO \$\$
BEGIN
    FOR i IN 0..127 LOOP
        EXECUTE format('GRANT bench_desk_%s TO bench', i);
    END LOOP;
END
\$\$;
INSERT INTO loyalty.member (card_no, home_store)
SELECT loyalty.card_number_new(), 'bau' FROM generate_series(1, $members)
ON CONFLICT DO NOTHING;
INSERT INTO loyalty.member_profile (member_id, full_name, phone)
SELECT member_id, '张伟', (13800000000 + n)::text
  FROM (SELECT member_id, row_number() OVER () AS n FROM loyalty.member) s;
CREATE TABLE public.bench_ids (n int PRIMARY KEY, member_id uuid NOT NULL, card_no text NOT NULL);
INSERT INTO public.bench_ids SELECT row_number() OVER (), member_id, card_no FROM loyalty.member;
GRANT SELECT ON public.bench_ids TO PUBLIC;
VACUUM ANALYZE;
SQL
n=$(psql -X -At -c 'SELECT count(*) FROM public.bench_ids')

cat >"$work/view.sql" <<'SQL'
\set n random(1, :members)
SELECT pg_catalog.set_config('role', 'bench_desk_' || :client_id, false);
SELECT v.* FROM loyalty.member_frontdesk v WHERE v.member_id = (SELECT member_id FROM public.bench_ids WHERE n = :n);
SQL
cat >"$work/audited.sql" <<'SQL'
\set n random(1, :members)
SELECT pg_catalog.set_config('role', 'bench_desk_' || :client_id, false);
SELECT * FROM loyalty.frontdesk_lookup((SELECT card_no FROM public.bench_ids WHERE n = :n), 'bench');
SQL

audit_off() {
    psql -q -X -v ON_ERROR_STOP=1 <<'SQL'
ALTER FUNCTION loyalty._audit(uuid, text, text[], text) RENAME TO _audit_bench_on;
CREATE FUNCTION loyalty._audit(uuid, text, text[], text) RETURNS void LANGUAGE sql AS 'SELECT';
SQL
}
audit_on() {
    psql -q -X -v ON_ERROR_STOP=1 <<'SQL'
DROP FUNCTION loyalty._audit(uuid, text, text[], text);
ALTER FUNCTION loyalty._audit_bench_on(uuid, text, text[], text) RENAME TO _audit;
SQL
}

run() {  # script clients: prints "tps errors"
    # 128 connections take seconds to open on a small machine: longer runs
    local out threads=$(( $2 < 4 ? $2 : 4 )) secs=$(( $2 >= 128 ? 3 * duration : duration ))
    out=$(pgbench -n -M prepared -U bench -c "$2" -j "$threads" -T "$secs" -D members="$n" -f "$1" 2>&1 || true)
    printf '%s %s\n' "$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -1)" \
        "$(grep -c 'aborted' <<<"$out" || true)"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo "members: $n, $duration s per run, $rounds alternating rounds (medians), max_worker_processes = $workers, loyalty.audit_writers = 2"
printf '%-8s %10s %10s %10s %8s %9s %9s\n' clients view_tps pool_tps off_tps pool_err pool/off pool/view
for c in $client_counts; do
    views="" pools="" offs="" errs=0
    for ((r = 0; r < rounds; r++)); do
        read -r t _ < <(run "$work/view.sql" "$c"); views="$views ${t:-0}"
        read -r t e < <(run "$work/audited.sql" "$c"); pools="$pools ${t:-0}"; errs=$((errs + e))
        audit_off
        read -r t _ < <(run "$work/audited.sql" "$c"); offs="$offs ${t:-0}"
        audit_on
    done
    view=$(median <<<"$views"); pool=$(median <<<"$pools"); off=$(median <<<"$offs")
    printf '%-8s %10.1f %10.1f %10.1f %8s %9s %9s\n' "$c" "$view" "$pool" "$off" "$errs" \
        "$(ratio "$pool" "$off")" "$(ratio "$pool" "$view")"
done
psql -X -At -c "SELECT 'audit records: ' || count(*) || ', chain breaks: ' || (SELECT count(*) FROM loyalty.audit_verify()) FROM loyalty.audit_log"

#!/usr/bin/env bash
# Audit benchmark (docs/audit.md, docs/performance.md): the audited front
# desk lookup through the shared writer pool (group commit) and through a
# writer per session (synchronous, the path used when loyalty is not
# preloaded), against the unaudited read of the same member, in the same
# run on the same server, at 1, 8, 32 and 128 clients.
#
#   bench/audit_bench.sh                    10,000 members, 5 s per run
#   MEMBERS=100000 DURATION=10 CLIENT_COUNTS="1 8" bench/audit_bench.sh
#   WORKERS=32 bench/audit_bench.sh          max_worker_processes (default 8, the server default)
#
# Per client count, three pgbench runs:
#   view     loyalty.member_frontdesk by member (masks, RLS; not audited): the floor
#   pool     loyalty.frontdesk_lookup by card (audited, loyalty.audit_mode = 'pool')
#   session  the same lookup with loyalty.audit_mode = 'session'
# and the ratios pool/view, session/view and pool/session; "errors" counts
# the pgbench clients aborted by an error (a refused audited read).
# Targets (issue 13): pool/view >= 0.5 at 8 clients, no error at 128
# clients with max_worker_processes = 8.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

members=${MEMBERS:-10000}
duration=${DURATION:-5}
client_counts=${CLIENT_COUNTS:-1 8 32 128}
workers=${WORKERS:-8}

as_unprivileged_copy "MEMBERS DURATION CLIENT_COUNTS WORKERS" bench/audit_bench.sh

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
SELECT loyalty.staff_create(gen_random_uuid()::text, 'bench_desk', 'bau', 'frontdesk');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'bench_desk_session', 'bau', 'frontdesk');
ALTER ROLE bench_desk_session SET loyalty.audit_mode = 'session';
INSERT INTO loyalty.member (card_no, home_store)
SELECT loyalty.card_number_new(), 'bau' FROM generate_series(1, $members)
ON CONFLICT DO NOTHING;
INSERT INTO loyalty.member_profile (member_id, full_name, phone)
SELECT member_id, '张伟', (13800000000 + n)::text
  FROM (SELECT member_id, row_number() OVER () AS n FROM loyalty.member) s;
CREATE TABLE public.bench_ids (n int PRIMARY KEY, member_id uuid NOT NULL, card_no text NOT NULL);
INSERT INTO public.bench_ids SELECT row_number() OVER (), member_id, card_no FROM loyalty.member;
GRANT SELECT ON public.bench_ids TO bench_desk, bench_desk_session;
VACUUM ANALYZE;
SQL
n=$(psql -X -At -c 'SELECT count(*) FROM public.bench_ids')

cat >"$work/view.sql" <<'SQL'
\set n random(1, :members)
SELECT v.* FROM loyalty.member_frontdesk v WHERE v.member_id = (SELECT member_id FROM public.bench_ids WHERE n = :n);
SQL
cat >"$work/audited.sql" <<'SQL'
\set n random(1, :members)
SELECT * FROM loyalty.frontdesk_lookup((SELECT card_no FROM public.bench_ids WHERE n = :n), 'bench');
SQL

run() {  # user script clients: prints "tps errors"
    local out threads=$(( $3 < 4 ? $3 : 4 ))
    out=$(pgbench -n -M prepared -U "$1" -c "$3" -j "$threads" -T "$duration" -D members="$n" -f "$2" 2>&1 || true)
    printf '%s %s\n' "$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -1)" \
        "$(grep -c 'aborted' <<<"$out" || true)"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo "members: $n, $duration s per run, max_worker_processes = $workers, loyalty.audit_writers = 2"
printf '%-8s %12s %12s %8s %12s %8s %10s %10s %12s\n' clients view_tps pool_tps pool_err \
    session_tps sess_err pool/view sess/view pool/session
for c in $client_counts; do
    read -r view _ < <(run bench_desk "$work/view.sql" "$c")
    read -r pool perr < <(run bench_desk "$work/audited.sql" "$c")
    read -r sess serr < <(run bench_desk_session "$work/audited.sql" "$c")
    printf '%-8s %12s %12s %8s %12s %8s %10s %10s %12s\n' "$c" "${view:-0}" "${pool:-0}" "$perr" \
        "${sess:-0}" "$serr" "$(ratio "${pool:-0}" "${view:-0}")" "$(ratio "${sess:-0}" "${view:-0}")" \
        "$(ratio "${pool:-0}" "${sess:-0}")"
done
psql -X -At -c "SELECT 'audit records: ' || count(*) || ', chain breaks: ' || (SELECT count(*) FROM loyalty.audit_verify()) FROM loyalty.audit_log"

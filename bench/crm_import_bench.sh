#!/usr/bin/env bash
# CRM bulk import benchmark (docs/crm.md, "Bulk import").
#
# IMPORT_MEMBERS members (default 2,000; the issue's full size is
# 1,000,000) and five stays each are written to CSV files, then
#   1. the floor: a plain COPY of both files into tables of the same
#      columns (no checks, no ledger);
#   2. the import: COPY into loyalty.import_member / loyalty.import_stay and
#      CALL loyalty.import_run (member_enroll, points_accrue, stay_record for
#      every row, one subtransaction each, committed per step).
# Prints "name value" lines: rows per second of each and the ratio.
#
#   bench/crm_import_bench.sh
#   IMPORT_MEMBERS=1000000 bench/crm_import_bench.sh     full size (hours)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

as_unprivileged_copy "IMPORT_MEMBERS IMPORT_STEP" bench/crm_import_bench.sh

members=${IMPORT_MEMBERS:-2000}
step=${IMPORT_STEP:-1000}
work=$(mktemp -d /tmp/loyalty-importbench.XXXXXX)
trap 'stop_server "$work/data"; rm -rf "$work"' EXIT
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$work/sock" PGPORT=54396 PGUSER=postgres PGDATABASE=bench
start_server "$work/data" "$PGHOST" "$PGPORT" "shared_buffers = 512MB" "max_wal_size = 8GB" \
    "synchronous_commit = on"
psql -q -X -d postgres -c 'CREATE DATABASE bench'
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
q -c 'CREATE EXTENSION loyalty' \
  -c "SELECT loyalty.store_create('b1', 'bma', 'Bench A', 'bay', 'south', 'Asia/Shanghai')" \
  -c "SELECT loyalty.store_create('b2', 'bmb', 'Bench B', 'bay', 'east', 'Asia/Shanghai')" >/dev/null

# the source files
q -c "\\copy (SELECT 'bench', 'legacy-' || i, CASE WHEN i % 2 = 0 THEN 'bma' ELSE 'bmb' END,
              'Member ' || i, (13000000000 + i)::text, 'm' || i || '@legacy.example',
              date '1960-01-01' + (i % 15000), (i % 50) * 100, now() - interval '200 days'
         FROM generate_series(1, $members) i) TO '$work/members.csv' CSV"
q -c "\\copy (SELECT 'bench', 'legacy-' || i, CASE WHEN (i + k) % 2 = 0 THEN 'bma' ELSE 'bmb' END,
              current_date - 400 + k * 60 + (i % 20), current_date - 400 + k * 60 + (i % 20) + 1 + (i % 3),
              300 + (i % 700)
         FROM generate_series(1, $members) i, generate_series(0, 4) k) TO '$work/stays.csv' CSV"
rows=$((members * 6))

# 1. the floor: plain COPY
q -c "CREATE TABLE plain_member (LIKE loyalty.import_member INCLUDING IDENTITY INCLUDING DEFAULTS)" \
  -c "CREATE TABLE plain_stay (LIKE loyalty.import_stay INCLUDING IDENTITY INCLUDING DEFAULTS)" >/dev/null
t0=$(date +%s.%N)
q -c "\\copy plain_member (batch, external_ref, home_store, full_name, phone, email, birth_date, opening_points, points_earned_at) FROM '$work/members.csv' CSV"
q -c "\\copy plain_stay (batch, member_ref, store_code, check_in, check_out, room_revenue) FROM '$work/stays.csv' CSV"
t1=$(date +%s.%N)

# 2. the import
q -c "\\copy loyalty.import_member (batch, external_ref, home_store, full_name, phone, email, birth_date, opening_points, points_earned_at) FROM '$work/members.csv' CSV"
q -c "\\copy loyalty.import_stay (batch, member_ref, store_code, check_in, check_out, room_revenue) FROM '$work/stays.csv' CSV"
q -c "CALL loyalty.import_run('bench', $step)"
t2=$(date +%s.%N)

q -At -c "SELECT kind, total_rows, imported, duplicate, rejected FROM loyalty.import_progress('bench')" | sed 's/^/# /'
q -At -c "SELECT count(*) FROM loyalty.ledger_check()" | sed 's/^/# ledger_check problems: /'
awk -v r="$rows" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
    copy = r / (b - a); imp = r / (c - b);
    printf "import_rows %d\ncopy_rows_per_second %.0f\nimport_rows_per_second %.0f\nimport_over_copy %.4f\n",
           r, copy, imp, imp / copy }'

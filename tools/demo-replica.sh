#!/usr/bin/env bash
# Story 8 of the demo: a store replica beside HQ (docs/replication.md).
#
#   tools/demo-replica.sh          after tools/demo.sh: start store sha's
#                                  replica, cut it off, record a stay there,
#                                  reconnect, show the points arriving once
#   tools/demo-replica.sh stop     stop the store server
#
# tools/demo.sh may call it as its last step (same environment: PGHOST,
# PGPORT, STAGED_BINDIR); run alone it finds the demo under
# $LOYALTY_DEMO_DIR (default /tmp/loyalty-demo).  The store server listens
# on the same socket directory, port HQ's + 1.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

dir=${LOYALTY_DEMO_DIR:-/tmp/loyalty-demo}
hq_port=${PGPORT:-${LOYALTY_DEMO_PORT:-5499}}
sock=${PGHOST:-$dir/sock}
store_port=$((hq_port + 1))
store_data=$dir/store-sha
STAGED_BINDIR=${STAGED_BINDIR:-$dir/inst$PG_BINDIR}
[ -x "$STAGED_BINDIR/pg_ctl" ] || die "no demo under $dir: run tools/demo.sh first"

if [ "$(id -u)" -eq 0 ]; then
    exec runuser -u "$(stat -c %U "$dir/data")" -- env LOYALTY_DEMO_DIR="$dir" \
        PGHOST="$sock" PGPORT="$hq_port" STAGED_BINDIR="$STAGED_BINDIR" "$0" "$@"
fi

if [ "${1:-start}" = stop ]; then
    stop_server "$store_data"
    rm -rf "$store_data" "$store_data.initdb.log"
    echo "store replica stopped"
    exit 0
fi

export PATH="$STAGED_BINDIR:$PATH" PGUSER=postgres
hq() { psql -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$hq_port" -d loyalty_demo -P pager=off "$@"; }
store() { psql -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$store_port" -d loyalty_store -P pager=off "$@"; }
# wait_for NODE SQL: poll until the query returns t (at most 60 s)
wait_for() {
    local node=$1 sql=$2 i
    for i in $(seq 1 300); do
        [ "$($node -At -c "$sql")" = t ] && return 0
        sleep 0.2
    done
    die "timed out waiting for: $sql"
}

echo
echo "== Story 8: store sha runs its own replica, and keeps working offline"
stop_server "$store_data"
rm -rf "$store_data"
start_server "$store_data" "$sock" "$store_port" "max_logical_replication_workers = 4"
psql -X -q -h "$sock" -p "$store_port" -d postgres -c 'CREATE DATABASE loyalty_store'
store -c 'CREATE EXTENSION loyalty'

hq -c "SELECT loyalty.replica_store_remove(gen_random_uuid()::text, 'sha', force => true)" >/dev/null 2>&1 || true
echo "-- HQ: publish store sha's data (two statements: the publication, then its slot)"
hq -c "SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'sha', offline_redeem_cap => 3000)"
hq -c "SELECT loyalty.replica_slot_create('sha')"
echo "-- store: subscribe (initial copy), then HQ subscribes to the store's outbox"
PGOPTIONS='-c client_min_messages=warning' store -c "SELECT loyalty.store_subscribe('host=$sock port=$hq_port dbname=loyalty_demo user=postgres', 'sha')"
hq -c "SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'sha', 'host=$sock port=$store_port dbname=loyalty_store user=postgres')"
wait_for store "SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')"

member=$(hq -At -c "SELECT member_id FROM loyalty.member WHERE home_store = 'sha' ORDER BY card_no LIMIT 1")
echo "-- the store holds the members (no ID numbers, no addresses), tiers and balances"
store -c "SELECT (SELECT count(*) FROM loyalty.member) AS members,
                 (SELECT count(*) FROM loyalty.member_identity) AS identity_rows,
                 (SELECT count(*) FROM loyalty.member_profile WHERE address IS NOT NULL) AS addresses,
                 (SELECT count(*) FROM loyalty.member_preference WHERE scope = 'store' AND store_code <> 'sha') AS other_stores_private_prefs"

echo "-- the network of store sha goes down"
hq -c 'ALTER SUBSCRIPTION loyalty_outbox_sha DISABLE'
store -c 'ALTER SUBSCRIPTION loyalty_store_sha DISABLE'
echo "-- offline, the front desk records a stay (1,280 points) and a preference"
store -c "SELECT loyalty.store_points_accrue('demo-stay-808', '$member', 1280, 'stay', 'room 808') AS event"
store -c "SELECT loyalty.store_points_accrue('demo-stay-808', '$member', 1280, 'stay', 'room 808') AS retried_call_same_event"
store -c "SELECT loyalty.store_preference_record('demo-pillow', '$member', 'pillow', 'buckwheat-free') AS event"
store -c "SELECT event_id, kind, status FROM loyalty.store_outbox_status ORDER BY event_id"
echo "-- HQ has not seen it yet"
hq -c "SELECT loyalty.points_balance('$member') AS balance_at_hq"

echo "-- the link returns"
hq -c 'ALTER SUBSCRIPTION loyalty_outbox_sha ENABLE'
store -c 'ALTER SUBSCRIPTION loyalty_store_sha ENABLE'
wait_for store "SELECT count(*) = 0 FROM loyalty.store_outbox_status WHERE status IN ('pending', 'held')"
echo "-- the points arrived once at HQ, and HQ's verdict and balance are back at the store"
hq -c "SELECT loyalty.points_balance('$member') AS balance_at_hq,
              (SELECT count(*) FROM loyalty.outbox_result WHERE store_code = 'sha') AS events_applied"
store -c "SELECT event_id, kind, status, decided_at IS NOT NULL AS decided FROM loyalty.store_outbox_status ORDER BY event_id"
store -c "SELECT balance AS balance_at_store FROM loyalty.point_balance WHERE member_id = '$member'"
echo "-- the DBA view at HQ"
hq -x -c "SELECT store_code, mode, slot_status, retained_wal_bytes, lag_bytes, outbox_attached,
                 last_event_id, events_applied, events_held, conflicts, rejected, redeliveries
            FROM loyalty.replica_status"
# tools/demo.sh prints its own closing words
[ -n "${LOYALTY_DEMO_QUIET_END:-}" ] || cat <<TXT

The store replica is running beside HQ:
    psql -h $sock -p $store_port -U postgres loyalty_store
Stop it with: tools/demo-replica.sh stop
TXT

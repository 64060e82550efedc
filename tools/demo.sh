#!/usr/bin/env bash
# The loyalty demo: a throwaway HQ server with the demo chain of
# docs/demo.md, and a short tour of what it shows.
#
#   tools/demo.sh          start (or restart) the demo and print the tour
#   tools/demo.sh stop     stop the demo server and remove its files
#
# The server listens on a unix socket only, under $LOYALTY_DEMO_DIR
# (default /tmp/loyalty-demo).  As root, missing Debian packages are
# installed first and the server runs as the unprivileged postgres user.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

dir=${LOYALTY_DEMO_DIR:-/tmp/loyalty-demo}
port=${LOYALTY_DEMO_PORT:-5499}
action=${1:-start}

stop_demo() {
    local d
    if [ -x "$dir/inst$PG_BINDIR/pg_ctl" ] && [ -d "$dir/data" ]; then
        STAGED_BINDIR="$dir/inst$PG_BINDIR"
        for d in "$dir/store-sha" "$dir/data"; do
            [ -d "$d" ] || continue
            if [ "$(id -u)" -eq 0 ]; then
                runuser -u "$(stat -c %U "$d")" -- "$STAGED_BINDIR/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1 || true
            else
                stop_server "$d"
            fi
        done
    fi
    rm -rf "$dir"
}

case $action in
stop)
    stop_demo
    echo "demo stopped and $dir removed"
    exit 0 ;;
start) ;;
*) die "usage: tools/demo.sh [start|stop]" ;;
esac

if [ "$(id -u)" -eq 0 ]; then
    ensure_packages
    stop_demo
    user=$(unprivileged_user)
    mkdir -p "$dir"
    cp -a "$here" "$dir/src"
    make -s -C "$dir/src" clean >/dev/null 2>&1 || true
    chown -R "$user" "$dir"
    cd "$dir"
    exec runuser -u "$user" -- env LOYALTY_DEMO_DIR="$dir" LOYALTY_DEMO_PORT="$port" \
        LOYALTY_DEMO_AS_ROOT=1 "$dir/src/tools/demo.sh" start
fi

ensure_packages
src=$here
if [ "${LOYALTY_DEMO_AS_ROOT:-}" = "" ]; then
    stop_demo
    mkdir -p "$dir"
fi
log "building and staging into $dir/inst"
build_and_stage "$src" "$dir/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$dir/sock" PGPORT="$port" PGUSER=postgres
start_server "$dir/data" "$PGHOST" "$PGPORT"

psql -q -X -d postgres -c 'CREATE DATABASE loyalty_demo' >/dev/null
psql -q -X -d loyalty_demo -c 'CREATE EXTENSION loyalty' >/dev/null

echo "loyalty demo: the demo chain (docs/demo.md)"
for f in "$src"/demo/*.sql; do
    psql -X -q -v ON_ERROR_STOP=1 -d loyalty_demo -P pager=off -f "$f" \
        || die "demo step $(basename "$f") failed"
done

# story 8: a store replica beside HQ, offline and back (tools/demo-replica.sh)
LOYALTY_DEMO_DIR="$dir" STAGED_BINDIR="$STAGED_BINDIR" LOYALTY_DEMO_QUIET_END=1 "$src/tools/demo-replica.sh" \
    || die "the store replica part of the demo failed"

sudo_hint=""
[ "${LOYALTY_DEMO_AS_ROOT:-}" = "" ] || sudo_hint="(as root or the postgres user) "
cat <<TXT

The demo servers are running: HQ, and store sha's replica (port $((PGPORT + 1))).
Connect ${sudo_hint}with:
    psql -h $PGHOST -p $PGPORT -U postgres loyalty_demo
    psql -h $PGHOST -p $((PGPORT + 1)) -U postgres loyalty_store
Staff logins (no password on the local socket): szx_desk, sha_house, urc_desk, hq_crm, hq_bi, ...
    psql -h $PGHOST -p $PGPORT -U szx_desk loyalty_demo
Stop them and remove every file with:
    tools/demo.sh stop
TXT

#!/usr/bin/env bash
# Run every test suite of loyalty: pg_regress, pgTAP (pg_prove), isolation
# and TAP (PostgreSQL::Test::Cluster), against a throwaway server.
#
#   tools/test.sh            all suites
#   tools/test.sh regress    only the named suites (regress pgtap isolation tap)
#
# As root it first installs the Debian packages it needs, then runs the
# tests as an unprivileged user in a copy of the tree.  As a normal user
# (with the packages installed) it needs no privilege.  It prints each
# suite's result and a last line "N passed, N failed", and exits non-zero
# on any failure.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
. "$here/tools/lib.sh"

suites=${*:-regress pgtap isolation tap}

if [ "$(id -u)" -eq 0 ]; then
    ensure_packages
    user=$(unprivileged_user)
    work=$(mktemp -d /tmp/loyalty-test.XXXXXX)
    if [ "${LOYALTY_KEEP:-}" = "" ]; then trap 'rm -rf "$work"' EXIT
    else log "keeping $work (results under $work/src)"; fi
    cp -a "$here" "$work/src"
    make -s -C "$work/src" clean >/dev/null 2>&1 || true
    chown -R "$user" "$work"
    rc=0
    cd "$work"
    runuser -u "$user" -- env LOYALTY_KEEP="${LOYALTY_KEEP:-}" \
        "$work/src/tools/test.sh" "$@" || rc=$?
    exit $rc
fi

ensure_packages
work=$(mktemp -d /tmp/loyalty-run.XXXXXX)
cleanup() {
    stop_server "$work/data"
    if [ "${LOYALTY_KEEP:-}" = "" ]; then rm -rf "$work"; else log "kept $work"; fi
}
trap cleanup EXIT

log "building and staging into $work/inst"
build_and_stage "$here" "$work/inst"
export PATH="$STAGED_BINDIR:$PATH"
export PGHOST="$work/sock" PGPORT=54329 PGUSER=postgres PGDATABASE=postgres
start_server "$work/data" "$PGHOST" "$PGPORT"

total_pass=0
total_fail=0
report() {  # suite passed failed
    printf '== %-10s %s passed, %s failed\n' "$1" "$2" "$3"
    total_pass=$((total_pass + $2))
    total_fail=$((total_fail + $3))
}

# count_regress LOG RC: pg_regress prints "test NAME ... ok|FAILED" per test
count_regress() {
    local p f
    p=$(grep -c '\.\.\. ok' "$1" || true)
    f=$(grep -c '\.\.\. FAILED' "$1" || true)
    if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    echo "$p $f"
}

# count_prove LOG RC: from prove's summary
count_prove() {
    local tests failed
    tests=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$1" | tail -1)
    failed=$(sed -n 's/.*Failed \([0-9]*\)\/[0-9]* subtests.*/\1/p' "$1" | awk '{s+=$1} END {print s+0}')
    tests=${tests:-0}
    if [ "$2" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
    echo "$((tests - failed < 0 ? 0 : tests - failed)) $failed"
}

mk() { make -s -C "$here" PG_CONFIG="$PG_CONFIG" with_llvm=no bindir="$STAGED_BINDIR" "$@"; }

for suite in $suites; do
    logf="$work/$suite.log"
    rc=0
    case $suite in
    regress)
        mk installcheck-regress >"$logf" 2>&1 || rc=$?
        read -r p f < <(count_regress "$logf" $rc) ;;
    isolation)
        mk installcheck-isolation >"$logf" 2>&1 || rc=$?
        read -r p f < <(count_regress "$logf" $rc) ;;
    pgtap)
        PGOPTIONS='-c client_min_messages=warning' psql -q -X -v ON_ERROR_STOP=1 -c 'DROP DATABASE IF EXISTS loyalty_pgtap' \
            -c 'CREATE DATABASE loyalty_pgtap' >/dev/null
        psql -q -X -v ON_ERROR_STOP=1 -d loyalty_pgtap \
            -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION loyalty' >/dev/null
        mk installcheck-pgtap PGTAP_DB=loyalty_pgtap >"$logf" 2>&1 || rc=$?
        read -r p f < <(count_prove "$logf" $rc) ;;
    tap)
        mk installcheck-tap PROVE_FLAGS="-I $(dirname "$($PG_CONFIG --pgxs)")/../../src/test/perl" \
            >"$logf" 2>&1 || rc=$?
        read -r p f < <(count_prove "$logf" $rc) ;;
    *) die "unknown suite $suite" ;;
    esac
    if [ "$f" -ne 0 ]; then
        cat "$logf"
        for d in "$here/regression.diffs" "$here/output_iso/regression.diffs"; do
            [ "$suite" = regress ] && [ "$d" != "$here/regression.diffs" ] && continue
            [ "$suite" = isolation ] && [ "$d" != "$here/output_iso/regression.diffs" ] && continue
            [ -f "$d" ] && head -c 20000 "$d"
        done
    fi
    report "$suite" "$p" "$f"
done

echo
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]

#!/usr/bin/env bash
# Run every test suite of loyalty: pg_regress, pgTAP (pg_prove), isolation,
# TAP (PostgreSQL::Test::Cluster), and the example clients against the demo,
# on a throwaway server.
#
#   tools/test.sh            all suites
#   tools/test.sh regress    only the named suites (structure regress pgtap isolation tap examples)
#   LOYALTY_TAP="test/t/050_replica.pl" tools/test.sh tap       only these TAP files
#   LOYALTY_PGTAP="test/pgtap/40_attacks.sql" tools/test.sh pgtap   only these pgTAP files
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

suites=${*:-structure regress pgtap isolation tap examples}

as_unprivileged_copy "LOYALTY_TAP LOYALTY_PGTAP" tools/test.sh "$@"

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

# run_examples: load the demo into loyalty_demo, then run the C (libpq) and
# Node.js (pg) example clients as a front desk login; prints ok/not ok lines.
run_examples() {
    local card out ex=$work/examples
    check() {  # description, then a command whose success is the check
        local d=$1; shift
        if "$@"; then echo "ok - $d"; else echo "not ok - $d"; fi
    }
    PGOPTIONS='-c client_min_messages=warning' psql -q -X -c 'DROP DATABASE IF EXISTS loyalty_demo' -c 'CREATE DATABASE loyalty_demo'
    psql -q -X -d loyalty_demo -c 'CREATE EXTENSION loyalty'
    for f in "$here"/demo/*.sql; do
        psql -q -X -v ON_ERROR_STOP=1 -d loyalty_demo -f "$f" >/dev/null || { echo "not ok - demo $(basename "$f")"; return 1; }
    done
    echo "ok - demo loaded"
    # every ```sql block of docs/*.md against the demo (tools/docs_examples.pl)
    perl "$here/tools/docs_examples.pl" loyalty_demo | sed 's/^\(not \)\{0,1\}ok [0-9]* - /&docs example /' | grep -v '^1\.\.'
    mkdir -p "$ex" && cp -r "$here/examples/." "$ex/"

    # C: 王芳, the demo's fixed szx member (docs/demo.md), checks in at szx,
    # twice (the retry records nothing new): the command of examples/README.md
    card=800000000011
    check "C example builds" make -s -C "$ex/c" PG_CONFIG="$PG_CONFIG"
    out=$("$ex/c/checkin" "dbname=loyalty_demo user=szx_desk" "$card" szx 2026-11-20 2026-11-22 1200 2>&1) || true
    echo "$out"
    check "C example: member found, masked" grep -q "^member   $card  name .*phone \*\*\*\*[0-9][0-9][0-9] " <<<"$out"
    check "C example: benefits listed" grep -q "^benefit " <<<"$out"
    check "C example: stay recorded" grep -q "^stay     2 nights, 12000 base" <<<"$out"
    out=$("$ex/c/checkin" "dbname=loyalty_demo user=szx_desk" "$card" szx 2026-11-20 2026-11-22 1200 2>&1) || true
    check "C example: a retry is recorded once" grep -q "(retry: recorded before)" <<<"$out"
    out=$("$ex/c/checkin" "dbname=loyalty_demo user=szx_desk" "$card" sha 2026-11-23 2026-11-24 500 2>&1) || true
    echo "$out"
    check "C example: another store's check-in is refused" grep -q "\[42501\]" <<<"$out"

    # Node.js: 张伟 (the fixed silver member) stays 40 nights at sha, which
    # makes him gold at once, and the listening terminal hears the tier change
    card=800000000037
    check "Node example installs (npm ci)" env NPM_CONFIG_UPDATE_NOTIFIER=false \
        npm ci --prefix "$ex/node" --no-audit --no-fund --loglevel=error
    out=$(PGDATABASE=loyalty_demo PGUSER=sha_desk node "$ex/node/checkin.js" --card "$card" --store sha \
          --check-in 2026-09-01 --check-out 2026-10-11 --revenue 4000 --listen-as hq_crm --wait 20 2>&1) || true
    echo "$out"
    check "Node example: stay recorded with an upgrade" grep -q "^stay     40 nights.*tier gold (upgraded)" <<<"$out"
    check "Node example: the terminal heard the tier change" grep -q "^event .*silver -> gold" <<<"$out"
    check "Node example: the event lists the benefits gained" grep -q "^event .*benefits gained: .*breakfast" <<<"$out"
    check "Node example: no step failed" bash -c '! grep -q "check-in failed" <<<"$1"' _ "$out"
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
            -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION loyalty' -c 'SELECT loyalty.key_create()' >/dev/null
        mk installcheck-pgtap PGTAP_DB=loyalty_pgtap ${LOYALTY_PGTAP:+PGTAP_FILES="$LOYALTY_PGTAP"} >"$logf" 2>&1 || rc=$?
        read -r p f < <(count_prove "$logf" $rc) ;;
    tap)
        mk installcheck-tap PROVE_FLAGS="-I $(dirname "$($PG_CONFIG --pgxs)")/../../src/test/perl" \
            ${LOYALTY_TAP:+PROVE_TESTS="$LOYALTY_TAP"} \
            >"$logf" 2>&1 || rc=$?
        read -r p f < <(count_prove "$logf" $rc) ;;
    structure)
        "$here/tools/check_structure.sh" >"$logf" 2>&1 || rc=$?
        p=$(grep -c '^ok ' "$logf" || true)
        f=$(grep -c '^not ok ' "$logf" || true)
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi ;;
    examples)
        run_examples >"$logf" 2>&1 || rc=$?
        p=$(grep -c '^ok ' "$logf" || true)
        f=$(grep -c '^not ok ' "$logf" || true)
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi ;;
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

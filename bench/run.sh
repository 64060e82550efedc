#!/usr/bin/env bash
# Run every benchmark of bench/ at one size and add its figures to
# bench/figures.tsv (issue 19).  Each script stages its own server, prints
# its table and cleans up; this keeps each script's whole output in
# $BENCH_OUT/NAME.txt
# (default /tmp/loyalty-bench/DATE-SIZE) with the load average (uptime) before
# and after it, and appends one line per ratio to bench/figures.tsv (area,
# measure, clients, value, floor, ratio, target, unit, date).  The ledger
# comparison writes its lines itself (BENCH_TSV); for the other scripts the
# lines that report a ratio are appended with the line's text as the
# measure.  Nothing is plotted: run bench/plot.sh afterwards.
#
#   bench/run.sh                      small: every script's default size
#   BENCH_SIZE=full bench/run.sh      1,000,000 members where a script has a size
#   BENCH_SCRIPTS="ledger_compare ledger_bench" bench/run.sh
#   BENCH_SCRIPTS=scale_bench bench/run.sh                  opt-in only: 10,000 vs 200,000 members
#   BENCH_SCRIPTS=scale_bench BENCH_SIZE=full bench/run.sh  10,000 vs 10,000,000 (hours, tens of GB)
#
# Sizes: small is each script's default (ledger 1,000 members, privacy
# 1,000,000 members with 100,000 here, tiers 10,000, segments 20,000);
# full sets MEMBERS/TIER_MEMBERS/SEG_MEMBERS to 1,000,000.  scale_bench (issue
# 19's scale target) is in no default list: BENCH_SCRIPTS must name it; its
# large database has LARGE_MEMBERS members, 200,000 at small (a validation,
# not the target) and the script's 10,000,000 at full.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
size=${BENCH_SIZE:-small}
scripts=${BENCH_SCRIPTS:-ledger_compare ledger_bench benefit_bench privacy tier_bench segment_bench replica_bench audit_bench audit_change_bench}
out=${BENCH_OUT:-/tmp/loyalty-bench/$(date -u +%Y%m%dT%H%M)-$size}
tsv="$here/bench/figures.tsv"
mkdir -p "$out"
chmod a+rwx "$out"   # the scripts run as an unprivileged user when we are root
case $size in
    small) sizes=(MEMBERS=100000 LARGE_MEMBERS="${LARGE_MEMBERS:-200000}") ;;
    full) sizes=(MEMBERS=1000000 TIER_MEMBERS=1000000 SEG_MEMBERS=1000000) ;;
    *) echo "BENCH_SIZE is small or full" >&2; exit 2 ;;
esac
load() { uptime | sed 's/.*load average: //; s/,//g' | awk '{ print $1 }'; }

for s in $scripts; do
    f="$out/$s.txt"
    before=$(load)
    echo "== $s (load $before)" >&2
    rc=0
    if [ "$s" = ledger_compare ]; then
        env "${sizes[@]}" BENCH_TSV="$out/ledger_compare.tsv" BENCH_LABEL="run.sh $size" \
            "$here/bench/$s.sh" >"$f" 2>&1 || rc=$?
        chmod a+r "$out/ledger_compare.tsv" 2>/dev/null || true
    else
        env "${sizes[@]}" "$here/bench/$s.sh" >"$f" 2>&1 || rc=$?
    fi
    after=$(load)
    echo "load average before $before, after $after; exit $rc" >>"$f"
    echo "   exit $rc (load $after): $f" >&2
    [ "$rc" -eq 0 ] || continue
    if [ "$s" = ledger_compare ]; then
        # the script runs as another user when we are root: it wrote the file through BENCH_TSV
        [ -f "$out/ledger_compare.tsv" ] && cat "$out/ledger_compare.tsv" >>"$tsv"
    elif [ "$s" = scale_bench ]; then
        # its table: measure small large ratio min max ...; bi_scan: times in s
        awk -v size="$size" -v b="$before" -v a="$after" -v d="$(date -u +%F)" -v OFS='\t' '
            $1 ~ /^(accrue|benefits|lookup)$/ && NF >= 6 {
                print "scale", $1 " large vs small members (scale_bench, min " $5 " max " $6 ", run.sh " size ", load " b "->" a ")", "", $3, $2, $4, ">=0.90", "tps", d }
            $1 == "bi_scan" && match($0, /per-member time ratio [0-9.]+/) {
                print "scale", "bi_members full scan large vs small (scale_bench, " substr($0, RSTART, RLENGTH) ", run.sh " size ", load " b "->" a ")", "", $3, $2, $4, "", "s", d }' \
            "$f" >>"$tsv"
    elif [ "$s" = ledger_bench ]; then
        # its table: op clients members tps floor_tps ratio min max
        awk -v size="$size" -v b="$before" -v a="$after" -v d="$(date -u +%F)" -v OFS='\t' \
            '$1 ~ /^(accrue|redeem|redeem-seed)$/ && NF == 8 {
                print "ledger", $1 " vs floor (ledger_bench), " $3 " members (min " $7 " max " $8 ", run.sh " size ", load " b "->" a ")", $2, $4, $5, $6, "", "tps", d }' \
            "$f" >>"$tsv"
    else
        # every line that names a ratio: its text, and the first number after "ratio"
        grep -i 'ratio' "$f" | grep -v '^load average' | while IFS= read -r line; do
            r=$(printf '%s\n' "$line" | sed -n 's/.*[Rr]atio[^0-9]*\([0-9][0-9.]*\).*/\1/p')
            printf '%s\t%s (run.sh %s, load %s->%s)\t\t\t\t%s\t\t\t%s\n' "${s%_bench}" \
                "$(printf '%s' "$line" | tr -s ' \t' ' ')" "$size" "$before" "$after" "$r" "$(date -u +%F)" >>"$tsv"
        done
    fi
done
echo "figures appended to $tsv; outputs in $out" >&2

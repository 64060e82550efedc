#!/usr/bin/env bash
# Turn bench/figures.tsv (the figures the benchmarks reported; see
# docs/performance.md) into docs/img/bench-ratios.png: one bar per measure,
# the ratio to its floor, with the target marked.
#
#   bench/plot.sh [figures.tsv] [output.png]
#
# Needs gnuplot (Debian: gnuplot-nox; installed here when run as root).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
in=${1:-$here/bench/figures.tsv}
out=${2:-$here/docs/img/bench-ratios.png}

if ! command -v gnuplot >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null
    else
        echo "gnuplot is missing: apt-get install gnuplot-nox" >&2; exit 1
    fi
fi

data=$(mktemp)
trap 'rm -f "$data"' EXIT
# columns: index, label, ratio, target, 1 if the target is met
awk -F'\t' 'NR > 1 && $6 != "" {
    t = $7; op = substr(t, 1, 2); v = substr(t, 3) + 0
    if (t == "") { v = "NaN"; met = 2 }          # no target: a grey bar
    else met = (op == ">=") ? ($6 >= v) : ($6 <= v)
    label = $1 ": " $2 ($3 != "" && $3 != "-" ? " (" $3 " cl.)" : "")
    gsub(/"/, "", label)
    if (length(label) > 78) label = substr(label, 1, 75) "..."

    printf "%d\t\"%s\"\t%s\t%s\t%d\n", n++, label, $6, v, met
}' "$in" >"$data"
[ -s "$data" ] || { echo "no figures with a ratio in $in" >&2; exit 1; }
rows=$(wc -l <"$data")

gnuplot <<GP
set terminal pngcairo noenhanced size 1500,$((160 + rows * 34)) font "DejaVu Sans,10"
set output "$out"
set title "loyalty: ratio to the floor measured in the same run (target |: green met, red missed, grey none)"
set style fill solid 0.8 border -1
set yrange [-0.7:$rows - 0.3]
set ytics nomirror
set xtics nomirror
set xlabel "ratio"
set grid xtics
unset key
set datafile separator "\t"
plot "$data" using (\$3/2):1:(\$3/2):(0.35):(\$5 == 2 ? 0x9e9e9e : \$5 == 1 ? 0x4c9a2a : 0xd9534f):ytic(2) with boxxyerror lc rgb variable, \
     "$data" using 4:1:(0):(0.42) with vectors nohead lw 3 lc rgb "#222222", \
     "$data" using 4:1:(0):(-0.42) with vectors nohead lw 3 lc rgb "#222222", \
     "$data" using (\$3 + 0.02):1:(sprintf("%.2f", \$3)) with labels left
GP
echo "wrote $out"

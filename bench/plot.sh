#!/usr/bin/env bash
# Draw bench/figures.tsv (the figures the benchmarks reported; see
# docs/performance.md) as one chart per family (the "area" column):
# docs/img/bench-<area>.png.  Each chart has a panel per direction, and
# each panel's axis says which way is better:
#
#   higher is better   throughput ratios (tps, tx/s), targets ">=x"
#   lower is better    time ratios (s, ms), targets "<=x"
#
# (a figure's direction comes from its target, else from its unit).  Every
# bar is labelled with its ratio and the value and floor it was computed
# from, and carries its full measure text; the target, when the
# specification has one, is a black mark (green bar: met, red: missed,
# grey: no target); the dashed line is the floor itself (ratio 1).
#
#   bench/plot.sh [figures.tsv] [output directory]
#
# Needs gnuplot (Debian: gnuplot-nox).  As root this script installs it;
# the tests never do.  Every benchmark script calls it after adding its
# figures.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
in=${1:-$here/bench/figures.tsv}
outdir=${2:-$here/docs/img}

if ! command -v gnuplot >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null; }
    else
        echo "gnuplot is missing: apt-get install gnuplot-nox (as root), then run bench/plot.sh again" >&2; exit 1
    fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# one data file per family and direction: index, ratio, target (NaN: none),
# colour, measure label, value label
awk -F'\t' -v dir="$work" 'NR > 1 && $6 != "" {
    area = $1; t = $7; unit = $8
    if (t ~ /^>=/) { d = "higher"; v = substr(t, 3) + 0 }
    else if (t ~ /^<=/) { d = "lower"; v = substr(t, 3) + 0 }
    else { v = "NaN"; d = (unit == "s" || unit == "ms" || unit == "us") ? "lower" : "higher" }
    if (v == "NaN") colour = "0x9e9e9e"
    else if (d == "higher") colour = ($6 + 0 >= v) ? "0x4c9a2a" : "0xd9534f"
    else colour = ($6 + 0 <= v) ? "0x4c9a2a" : "0xd9534f"
    label = $2 ($3 != "" && $3 != "-" ? ", " $3 " client" ($3 == 1 ? "" : "s") : "")
    gsub(/"/, "\x27", label)
    vlabel = sprintf("%s  (%s / %s %s%s)", $6, $4, $5, unit, (v == "NaN" ? "" : ", target " t))
    f = dir "/" area "." d
    n[f]++
    printf "%d\t%s\t%s\t%s\t\"%s\"\t\"%s\"\n", n[f] - 1, $6, v, colour, label, vlabel > f
    if (!(area in seen)) { seen[area] = 1; print area > (dir "/areas") }
}' "$in"
[ -s "$work/areas" ] || { echo "no figures with a ratio in $in" >&2; exit 1; }
mkdir -p "$outdir"

while read -r area; do
    out="$outdir/bench-$area.png"
    panels=() heights=() total=60
    for d in higher lower; do
        f="$work/$area.$d"
        [ -s "$f" ] || continue
        rows=$(wc -l <"$f")
        h=$((110 + rows * 62))
        panels+=("$d") heights+=("$h")
        total=$((total + h))
    done
    {
        echo "set terminal pngcairo noenhanced size 1400,$total font 'DejaVu Sans,11'"
        echo "set output '$out'"
        echo "set datafile separator '\t'"
        echo "set multiplot title 'loyalty benchmarks: $area (each figure as a ratio to a floor measured in the same run)'"
        echo "set style fill solid 0.85 border -1"
        echo "unset key"
        echo "set grid xtics"
        echo "set style textbox opaque noborder"
        echo "set noytics"
        top=$((total - 40))
        for i in "${!panels[@]}"; do
            d=${panels[$i]} h=${heights[$i]} f="$work/$area.${panels[$i]}"
            rows=$(wc -l <"$f")
            max=$(awk -F'\t' '{ m = ($2 > m ? $2 : m); if ($3 != "NaN" && $3 > m) m = $3 } END { print (m < 1 ? 1 : m) * 1.6 }' "$f")
            top=$((top - h))
            if [ "$d" = higher ]; then
                xl="ratio to the floor  -->  higher is better"
            else
                xl="ratio to the floor (time)  <--  lower is better"
            fi
            echo "set origin 0,$(awk -v a=$top -v t=$total 'BEGIN { print a / t }')"
            echo "set size 1,$(awk -v a=$h -v t=$total 'BEGIN { print a / t }')"
            echo "set title '$d is better'"
            echo "set xlabel '$xl'"
            echo "set xrange [0:$max]"
            echo "set yrange [$rows - 0.4:-0.75]"
            echo "set arrow 1 from 1, graph 0 to 1, graph 1 nohead dt 2 lc rgb '#555555'"
            echo "set label 1 'floor = 1' at 1, graph 1 offset 0.3,-0.8 font ',9' tc rgb '#555555'"
            echo "plot '$f' using (\$2/2):1:(\$2/2):(0.16):4 with boxxyerror lc rgb variable, \\"
            echo "     '' using 3:(\$1 - 0.3):(0):(0.6) with vectors nohead lw 3 lc rgb '#111111', \\"
            echo "     '' using (0):(\$1 - 0.38):5 with labels left offset 0.3,0 font ',10', \\"
            echo "     '' using 2:1:6 with labels left offset 0.8,0 font ',10' boxed"
        done
        echo "unset multiplot"
    } >"$work/$area.gp"
    gnuplot "$work/$area.gp"
    echo "wrote $out"
done <"$work/areas"

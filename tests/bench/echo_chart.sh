#!/usr/bin/env bash
# Renders the results of bench=echo as a bar chart (PNG) with gnuplot: round trips/s on top,
# the server's CPU time per round trip below, bars grouped by connection count, one colour per
# server.
#
# Usage: tests/bench/echo_chart.sh RESULTS [OUTPUT]
#   RESULTS  the saved output of `tests/bench/run.sh echo` ('-': standard input); lines other
#            than bench=echo / bench=echo_cpu are ignored, except the '# cpu=...' machine line,
#            which becomes the chart's subtitle.
#   OUTPUT   the PNG to write (default: echo.png in the current directory).
# Example:
#   tests/bench/run.sh echo | tee echo.txt && tests/bench/echo_chart.sh echo.txt tests/bench/echo.png
set -euo pipefail

if (($# < 1 || $# > 2)); then
    sed -n 's/^# \{0,1\}//; 6,13p' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
results=$1
output=${2:-echo.png}
if ! command -v gnuplot >/dev/null; then
    echo "echo_chart.sh: gnuplot not found (on Debian: apt-get install gnuplot-nox)" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
cat -- "$results" >"$tmp/results"

# One table per measurement, for gnuplot's clustered histogram: a header row naming the
# servers, then one row per connection count ('-' where a server was not measured). Servers
# and connection counts keep the order of the run.
table() {
    awk -v want="$1" '
        $1 == "bench=" want && $2 ~ /^variant=/ && $3 ~ /^value=/ {
            variant = substr($2, 9)
            split_at = match(variant, /-[0-9]+$/)
            if (!split_at) next
            server = substr(variant, 1, split_at - 1)
            conns = substr(variant, split_at + 1)
            if (!(server in seen_server)) { seen_server[server] = 1; servers[++ns] = server }
            if (!(conns in seen_conns)) { seen_conns[conns] = 1; counts[++nc] = conns }
            value[server, conns] = substr($3, 7)
        }
        END {
            if (ns == 0) exit 1
            line = "connections"
            for (s = 1; s <= ns; ++s) line = line " " servers[s]
            print line
            for (c = 1; c <= nc; ++c) {
                line = counts[c]
                for (s = 1; s <= ns; ++s) {
                    v = value[servers[s], counts[c]]
                    line = line " " (v == "" ? "-" : v)
                }
                print line
            }
        }' "$tmp/results"
}
if ! table echo >"$tmp/rate"; then
    echo "echo_chart.sh: no bench=echo lines in $results" >&2
    exit 1
fi
table echo_cpu >"$tmp/cpu" || true
machine=$(sed -n 's/^# cpu="\([^"]*\)" cores=\([0-9]*\) kernel=\([0-9.]*\)[^ ]*.*/\1, \2 cores, Linux \3/p' \
    "$tmp/results" | head -n 1)
load=$(sed -n 's/^# echo: .*load average before: \([0-9.]*\).*/\1/p' "$tmp/results" | head -n 1)
size=$(sed -n 's/^# echo: .* \([0-9]*\)-byte messages.*/\1/p' "$tmp/results" | head -n 1)
columns=$(head -n 1 "$tmp/rate" | wc -w)

gnuplot <<EOF
set terminal pngcairo size 1100,900 font "sans,10" noenhanced
set output "$output"
set datafile missing "-"
set key autotitle columnheader
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set grid ytics
set xlabel "connections"
set yrange [0:*]
set multiplot layout $([[ -s $tmp/cpu ]] && echo 2 || echo 1),1 title "echo over loopback${size:+, $size-byte messages}${machine:+\\n$machine}${load:+, load average $load}"
set title "round trips per second (higher is better)"
set format y "%.0s%c"
# Each bar is labelled with its value: a cluster of n bars is centred on its row number, and
# each bar is 1/(n + gap) wide.
n = $columns - 1
bar(i) = (i - 2 - (n - 1) / 2.0) / (n + 1.0)
kilo(v) = v < 10000 ? sprintf("%.1fk", v / 1000) : sprintf("%.0fk", v / 1000)
set offsets 0, 0, graph 0.12, 0
plot for [i=2:$columns] "$tmp/rate" using i:xtic(1) title columnheader(i), \
     for [i=2:$columns] "$tmp/rate" using (\$0 + bar(i)):i:(kilo(column(i))) \
         with labels rotate by 90 left offset 0, 0.3 font ",8" notitle
if ($([[ -s $tmp/cpu ]] && echo 1 || echo 0)) {
    set title "server CPU time per round trip, µs (lower is better)"
    set format y "%g"
    plot for [i=2:$columns] "$tmp/cpu" using i:xtic(1) title columnheader(i), \
         for [i=2:$columns] "$tmp/cpu" using (\$0 + bar(i)):i:(sprintf("%.1f", column(i))) \
             with labels rotate by 90 left offset 0, 0.3 font ",8" notitle
}
unset multiplot
EOF
echo "echo_chart.sh: wrote $output"

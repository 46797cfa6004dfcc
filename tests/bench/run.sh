#!/usr/bin/env bash
# Builds the benchmarks in a release build directory and runs them.
#
# Usage: tests/bench/run.sh [NAME...]
#   NAME is a benchmark name (bh, timers, ...: every tests/bench/bench_NAME.cpp, and every
#   tests/bench/bench_NAME.py); all when none.
#   corio picks its backend as usual: CORIO_BACKEND=epoll|poll|io_uring forces one.
#
# A bench_NAME.cpp is built into the program bench_NAME and run. A bench_NAME.py is a driver
# script of programs that meson's alias target bench_NAME builds; it is run with python3 and
# the build directory as its argument (bench_echo.py: servers and a load client).
#
# The build directory is build-bench/ at the top of the repository (created, or reconfigured
# when it exists). Output: '#' lines describe the machine and build, then one line per
# measurement, `bench=<name> variant=<system>-<case> value=<x> unit=<u>`. Exits non-zero when
# the build or any benchmark fails.
#
# Like tests/run.sh, it first installs (as root; otherwise prints the sudo command and stops) the
# Debian packages corio builds with, plus python3 for the bench_NAME.py drivers, and, best
# effort, Asio for the baselines (without it those lines say "skipped").
# shellcheck source-path=SCRIPTDIR/../..
set -euo pipefail

bench_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
top=$(cd -- "$bench_dir/../.." && pwd)
build="$top/build-bench"
# shellcheck source=tests/support/packages.sh
source "$top/tests/support/packages.sh"

# Benchmark names, derived from the sources so that adding bench_NAME.cpp (and its name in
# meson.build) or bench_NAME.py (and its alias target) is all it takes.
all_names=()
for src in "$bench_dir"/bench_*.cpp "$bench_dir"/bench_*.py; do
    name=${src##*/bench_}
    all_names+=("${name%.*}")
done

names=("$@")
if ((${#names[@]} == 0)); then
    names=("${all_names[@]}")
fi
for name in "${names[@]}"; do
    if [[ ! -f $bench_dir/bench_$name.cpp && ! -f $bench_dir/bench_$name.py ]]; then
        echo "run.sh: unknown benchmark '$name' (known: ${all_names[*]})" >&2
        exit 2
    fi
done

corio_install_packages python3 || exit 1
corio_install_optional_packages libasio-dev

# Runs a build step quietly; shows its output only if it fails.
log=$(mktemp)
trap 'rm -f -- "$log"' EXIT
quietly() {
    if ! "$@" >"$log" 2>&1; then
        cat -- "$log" >&2
        echo "run.sh: failed: $*" >&2
        exit 1
    fi
}

options=(--buildtype=release -Dbenchmarks=true -Dtests=disabled -Dexamples=disabled)
if [[ -f $build/meson-private/coredata.dat ]]; then
    quietly meson setup --reconfigure "${options[@]}" "$build" "$top"
else
    quietly meson setup "${options[@]}" "$build" "$top"
fi
targets=()
for name in "${names[@]}"; do
    targets+=("bench_$name")
done
quietly meson compile -C "$build" "${targets[@]}"

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
# Meson logs the compiler it chose as: C++ compiler for the host machine: c++ (gcc 12.2.0 "...")
compiler=$(sed -n 's/^C++ compiler for the host machine: [^ ]* (\([^ ]* [^ ]*\) .*/\1/p' \
    "$build/meson-logs/meson-log.txt" | head -n 1)
echo "# cpu=\"${cpu:-unknown}\" cores=$(nproc) kernel=$(uname -r) compiler=\"${compiler:-unknown}\" buildtype=release"

for name in "${names[@]}"; do
    if [[ -f $bench_dir/bench_$name.py ]]; then
        python3 "$bench_dir/bench_$name.py" "$build"
    else
        "$build/tests/bench/bench_$name"
    fi
done

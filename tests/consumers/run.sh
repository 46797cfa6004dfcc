#!/usr/bin/env bash
# Builds and runs corio's two kinds of consumer, each a copy of consumer.cpp, in a temporary
# directory that is removed on exit (build/ and the source tree are not touched):
#  - subproject: subproject/meson.build, with a copy of this source tree as subprojects/corio
#    (only corio's library is built: a subproject skips its tests and examples);
#  - pkg-config: corio built alone and installed with `meson install --destdir`, then
#    `g++ consumer.cpp $(pkg-config --cflags --libs corio)` against the destdir
#    (PKG_CONFIG_SYSROOT_DIR), run with LD_LIBRARY_PATH; the .pc file must name its libraries
#    with -l flags only, and the library must carry a versioned SONAME.
# Neither consumer sets a C++ standard: corio's dependency and .pc file bring -std=c++20.
# Every step is bounded (CORIO_CONSUMER_TIMEOUT seconds, default 1200) and timed. Called by
# tests/run.sh in CI; exits non-zero if either consumer fails.
# shellcheck source-path=SCRIPTDIR/../..
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
top=$(cd -- "$here/../.." && pwd)
limit=${CORIO_CONSUMER_TIMEOUT:-1200}
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
export LC_ALL=C

# step WHAT COMMAND...: runs COMMAND bounded by the timeout; shows its output only on failure.
step() {
    local what=$1
    shift
    if ! timeout "$limit" "$@" >"$work/step.log" 2>&1; then
        cat -- "$work/step.log" >&2
        echo "consumers: $what failed: $*" >&2
        return 1
    fi
}

# copy_source DEST: the source tree as checked out (tracked and untracked files, not what
# .gitignore excludes, such as build directories), or without build* when it is not a checkout.
copy_source() {
    mkdir -p -- "$1"
    if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$top" ls-files -z --cached --others --exclude-standard |
            tar -C "$top" --null --ignore-failed-read -T - -cf - | tar -C "$1" -xf -
    else
        tar -C "$top" --exclude='./build*' -cf - . | tar -C "$1" -xf -
    fi
}

subproject_consumer() {
    local project=$work/subproject
    mkdir -p -- "$project/subprojects"
    cp -- "$here/subproject/meson.build" "$here/consumer.cpp" "$project/"
    copy_source "$project/subprojects/corio"
    step "subproject: configure" meson setup --force-fallback-for=corio "$project/build" "$project"
    if grep -q "test_runtime\|examples/" "$project/build/build.ninja"; then
        echo "consumers: subproject: corio's tests or examples are part of the build" >&2
        return 1
    fi
    step "subproject: build" meson compile -C "$project/build"
    step "subproject: run" "$project/build/consumer"
    cat -- "$work/step.log"
}

pkg_config_consumer() {
    local build=$work/corio-build destdir=$work/destdir pc lib_dir
    step "pkg-config: configure corio" meson setup --prefix=/usr -Dtests=disabled \
        -Dexamples=disabled "$build" "$top"
    step "pkg-config: build corio" meson compile -C "$build"
    step "pkg-config: install corio" meson install -C "$build" --destdir "$destdir"
    pc=$(find "$destdir" -name corio.pc -print -quit)
    if [[ -z $pc ]]; then
        echo "consumers: pkg-config: no corio.pc installed" >&2
        return 1
    fi
    if grep -n '^Libs.*\(/[^ ]*\.so\|\.a\b\)' "$pc" >&2; then
        echo "consumers: pkg-config: $pc names a library file instead of -l flags" >&2
        return 1
    fi
    lib_dir=$(dirname -- "$(find "$destdir" -name 'libcorio.so.*.*.*' -print -quit)")
    if ! readelf -d "$lib_dir"/libcorio.so | grep -q 'SONAME.*\[libcorio\.so\.[0-9]*\]'; then
        echo "consumers: pkg-config: libcorio.so has no versioned SONAME" >&2
        return 1
    fi
    local flags
    flags=$(PKG_CONFIG_PATH=$(dirname -- "$pc") PKG_CONFIG_SYSROOT_DIR=$destdir \
        pkg-config --cflags --libs corio)
    # shellcheck disable=SC2086 # the flags are words
    step "pkg-config: build the consumer" "${CXX:-g++}" -o "$work/consumer" \
        "$here/consumer.cpp" $flags
    step "pkg-config: run" env LD_LIBRARY_PATH="$lib_dir" "$work/consumer"
    cat -- "$work/step.log"
}

failed=false
for consumer in subproject pkg_config; do
    start=$(date +%s)
    if "${consumer}_consumer"; then
        result=OK
    else
        result=FAIL
        failed=true
    fi
    echo "consumers: $consumer $result in $(($(date +%s) - start)) s"
done
[[ $failed == false ]]

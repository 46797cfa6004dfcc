#!/usr/bin/env bash
# Quick start: installs the Debian packages corio needs (when run as root; otherwise prints the
# sudo command and stops), builds the tree in build/ at the top of the repository, then runs the
# demo: the showcase example (arguments are passed on to it), an echo server loaded by the echo
# client for 3 seconds (printing the backend and round trips per second), and the HTTP server
# answering the bundled client. Exits non-zero if any step fails.
#
# Safe to run again and from any directory: installed packages are not touched, an existing
# build/ keeps its options (only those tests/run.sh also sets are enforced: see
# tests/support/build_dir.sh) and ninja rebuilds only what changed.
# shellcheck source-path=SCRIPTDIR/..
set -euo pipefail

top=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/support/packages.sh
source "$top/tests/support/packages.sh"
# shellcheck source=tests/support/build_dir.sh
source "$top/tests/support/build_dir.sh"

corio_install_packages || exit 1
corio_configure "$top/build" "${corio_build_options[@]}"
meson compile -C "$top/build"

bin=$top/build/examples
for program in showcase echo_server echo_client http_server http_get; do
    if [[ ! -x $bin/$program ]]; then
        echo "corio: $bin/$program was not built; is it listed in examples/meson.build?" >&2
        exit 1
    fi
done

# Servers run in the background on a free port (--port 0) and are stopped by their pid.
work=$(mktemp -d)
server_pid=
stop_server() {
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" || true
        server_pid=
    fi
}
trap 'stop_server; rm -rf -- "$work"' EXIT

# start_server NAME ARGS...: starts it, waits (at most 10 s) for the first line of its output,
# which names the address it listens on, and sets `port`.
start_server() {
    local name=$1 out=$work/$1.out
    shift
    "$bin/$name" --port 0 "$@" >"$out" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        port=$(grep -o -m 1 '127\.0\.0\.1:[0-9]*' "$out" | cut -d: -f2) || true
        [[ -n $port ]] && return 0
        if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "corio: $name did not start:" >&2
    cat -- "$out" >&2
    exit 1
}

echo "== showcase"
"$bin/showcase" "$@"

echo
echo "== echo_server + echo_client: 16 connections, 64-byte messages, 3 s"
start_server echo_server
head -n 1 -- "$work/echo_server.out"
summary=$("$bin/echo_client" --port "$port" --connections 16 --size 64 --duration 3 | tail -n 1)
echo "$summary"
stop_server
server_backend=$(sed -n '1s/.*(\([a-z_]*\),.*/\1/p' -- "$work/echo_server.out")
client_backend=$(sed -n 's/.*backend=\([^ ]*\).*/\1/p' <<<"$summary")
rate=$(sed -n 's/.*rt_per_s=\([^ ]*\).*/\1/p' <<<"$summary")
echo "echo: $rate round trips/s (server on $server_backend, client on $client_backend)"

echo
echo "== http_server + http_get: two pipelined requests on one keep-alive connection"
start_server http_server --root "$top"
head -n 1 -- "$work/http_server.out"
"$bin/http_get" --fail --quiet --pipeline "http://127.0.0.1:$port/" \
    "http://127.0.0.1:$port/file/README.md"
stop_server
echo
echo "corio: quick start done. The examples are in $bin (each has --help)."

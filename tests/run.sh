#!/usr/bin/env bash
# Runs corio's test suite: installs the Debian packages it needs (as root), builds build/ with
# warnings as errors and runs `meson test`. Arguments are passed on to every `meson test` call
# (e.g. a suite or test name).
#
# With CI=true the suite is also built and run under ASan+UBSan (build-asan/) and TSan
# (build-tsan/). Before a sanitizer suite runs, a tiny program built with the same sanitizer is
# run first: on kernels with high mmap ASLR entropy (vm.mmap_rnd_bits=32) the GCC 12 runtimes
# abort with "unexpected memory mapping"; if the probe passes only with randomization off, that
# configuration's tests run under `setarch -R`. Every configuration is run even when an earlier
# one fails; the last line names each with its result, and the exit status is 1 if any failed.
# CI also builds and tests the configuration without the optional dependencies (build-nodeps/:
# no liburing, no Boost.Context), runs the default build's suite under a seccomp filter that
# refuses io_uring (see --no-io-uring) and builds and runs the consumer projects of
# tests/consumers/.
#
# tests/run.sh --no-io-uring [ARGS...]: builds build/ and runs its suite only under the filter
# (build/tests/no_io_uring, as in a container's default profile): every [io_uring] test must
# SKIP, every other test must pass (or SKIP where it also SKIPs without the filter).
# shellcheck source-path=SCRIPTDIR/..
set -uo pipefail

top=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/support/packages.sh
source "$top/tests/support/packages.sh"
# shellcheck source=tests/support/build_dir.sh
source "$top/tests/support/build_dir.sh"

corio_install_packages || exit 1
# Benchmark baseline (Asio) and the notify-protocol model checker; the suite runs without them.
corio_install_optional_packages "${corio_optional_packages[@]}"

# Caller-set options win. abort_on_error turns a report into a crash meson shows as a failure.
export ASAN_OPTIONS=${ASAN_OPTIONS-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS-halt_on_error=1:second_deadlock_stack=1}

no_io_uring_only=false
if [[ ${1-} == --no-io-uring ]]; then
    no_io_uring_only=true
    shift
fi
test_processes=2
test_arguments=("$@")
results=()  # "NAME RESULT", in run order, for the last line
failed=false

# record NAME RESULT
record() {
    results+=("$1 $2")
    [[ $2 == OK ]] || failed=true
}

# run_three_times COMMAND...: whether a sanitizer runtime's fixed shadow range collides with a
# randomized mapping is chance, so one clean run proves little. The timeout catches runtimes that
# loop on the fault instead of aborting.
run_three_times() {
    local _
    for _ in 1 2 3; do
        timeout 60 "$@" || return 1
    done
}

# sanitizer_launcher BUILD_DIR SANITIZE: prints, one word a line, the command prefix the tests
# built with -fsanitize=SANITIZE need (nothing, or setarch with randomization off); fails with the
# probe's output when the sanitizer runtime does not work here at all.
sanitizer_launcher() {
    local build_dir=$1 sanitize=$2
    local probe=$build_dir/sanitizer-probe output
    local compile=("${CXX:-c++}" -std=c++20 -pthread -fsanitize="$sanitize" -x c++ -o "$probe" -)
    "${compile[@]}" <<'CPP' || return 1
#include <thread>
int counter;
int main() {
    std::thread worker([] { ++counter; });
    worker.join();
    return counter == 1 ? 0 : 1;
}
CPP
    if output=$(run_three_times "$probe" 2>&1); then
        return 0
    fi
    local -a no_aslr=(setarch "$(uname -m)" -R)
    if command -v setarch >/dev/null &&
        run_three_times "${no_aslr[@]}" "$probe" >/dev/null 2>&1; then
        echo "corio: -fsanitize=$sanitize needs ASLR off here; tests run under ${no_aslr[*]}" >&2
        printf '%s\n' "${no_aslr[@]}"
        return 0
    fi
    printf 'corio: a -fsanitize=%s program does not run here:\n%s\n' "$sanitize" "$output" >&2
    return 1
}

# run_configuration NAME BUILD_DIR TIMEOUT_MULTIPLIER SANITIZE [-Dname=value...]: configures,
# builds and tests one configuration (SANITIZE is "none" or a b_sanitize value), recording
# "NAME OK" or "NAME FAIL (step)".
run_configuration() {
    local name=$1 build_dir=$2 timeout_multiplier=$3 sanitize=$4
    shift 4
    local -a launcher=()
    printf '\n==== corio tests: %s (%s) ====\n' "$name" "$build_dir"

    if ! corio_configure "$build_dir" -Dwerror=true -Dtests=enabled "$@"; then
        record "$name" "FAIL (configure)"
        return
    fi
    if ! meson compile -C "$build_dir"; then
        record "$name" "FAIL (build)"
        return
    fi
    if [[ $sanitize != none ]]; then
        local prefix
        if ! prefix=$(sanitizer_launcher "$build_dir" "$sanitize"); then
            record "$name" "FAIL (sanitizer runtime)"
            return
        fi
        [[ -n $prefix ]] && mapfile -t launcher <<<"$prefix"
    fi
    # --no-rebuild: the tests are the binaries just built, even if sources change meanwhile.
    if "${launcher[@]}" meson test -C "$build_dir" --no-rebuild --print-errorlogs \
        --num-processes "$test_processes" --timeout-multiplier "$timeout_multiplier" \
        "${test_arguments[@]}"; then
        record "$name" OK
    else
        record "$name" FAIL
    fi
}

# run_without_io_uring NAME BUILD_DIR: BUILD_DIR's suite (already built) once more, each test
# under the no_io_uring wrapper, logged as meson-logs/NAME-no_io_uring.* (meson appends the
# wrapper's name); then checks the results against the unfiltered run's (testlog.json).
run_without_io_uring() {
    local name=$1 build_dir=$2
    printf '\n==== corio tests: %s (%s, io_uring_setup refused) ====\n' "$name" "$build_dir"
    if [[ ! -x $build_dir/tests/no_io_uring ]]; then
        record "$name" "FAIL (no $build_dir/tests/no_io_uring)"
        return
    fi
    meson test -C "$build_dir" --no-rebuild --print-errorlogs --logbase "$name" \
        --wrapper "$build_dir/tests/no_io_uring" --num-processes "$test_processes" \
        "${test_arguments[@]}"
    local logs=$build_dir/meson-logs
    if python3 "$top/tests/support/check_no_io_uring.py" "$logs/$name-no_io_uring.json" \
        "$logs/testlog.json"; then
        record "$name" OK
    else
        record "$name" FAIL
    fi
}

if [[ $no_io_uring_only == true ]]; then
    if corio_configure "$top/build" "${corio_build_options[@]}" &&
        meson compile -C "$top/build"; then
        run_without_io_uring no-io-uring "$top/build"
    else
        record no-io-uring "FAIL (build)"
    fi
else
    run_configuration default "$top/build" 1 none "${corio_build_options[@]}"
fi

if [[ ${CI-} == true && $no_io_uring_only == false ]]; then
    # One line per configuration: NAME BUILD_DIR TIMEOUT_MULTIPLIER SANITIZE [-Dname=value...].
    sanitized=(-Dbuildtype=debugoptimized -Dbenchmarks=false -Db_lundef=false)
    # ASan+UBSan costs about 2x; TSan 5-15x, so its tests get more room before meson's timeout.
    run_configuration asan "$top/build-asan" 3 address,undefined \
        "${sanitized[@]}" -Db_sanitize=address,undefined
    run_configuration tsan "$top/build-tsan" 5 thread \
        "${sanitized[@]}" -Db_sanitize=thread
    # Without the optional dependencies (liburing, Boost.Context): epoll and poll only, no fibers.
    run_configuration nodeps "$top/build-nodeps" 1 none \
        "${corio_build_options[@]}" -Dio_uring=disabled -Dfibers=disabled
    # The default build's suite again, under the filter; then the consumers (about 3 min).
    run_without_io_uring no-io-uring "$top/build"
    if bash "$top/tests/consumers/run.sh"; then
        record consumers OK
    else
        record consumers FAIL
    fi
fi

summary=$(printf '%s, ' "${results[@]}")
printf '\ncorio tests: %s\n' "${summary%, }"
[[ $failed == false ]]

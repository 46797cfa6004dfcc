# shellcheck shell=bash
# Creating and updating meson build directories for examples/quickstart.sh and tests/run.sh
# (both source this file; it defines functions only and changes no shell options).
#
# A build directory is configured once and then reused: options are changed with
# `meson configure` only when they differ from what the directory already has, so a second run
# does not regenerate build.ninja and ninja has nothing to do.

corio_source_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)

# The options of build/, which the README's two commands share: examples/quickstart.sh and
# tests/run.sh both ask for exactly these, so whichever runs second finds nothing to rebuild.
# shellcheck disable=SC2034 # used by the scripts that source this file
corio_build_options=(-Dwerror=true -Dtests=enabled -Dexamples=enabled)

# corio_changed_options BUILD_DIR -Dname=value...: prints, one a line, the -D arguments whose
# value differs from the build directory's current setting. Fails when the directory cannot be
# introspected (for instance, it was made by another meson version).
corio_changed_options() {
    local build_dir=$1
    shift
    local options
    options=$(meson introspect "$build_dir" --buildoptions 2>/dev/null) || return 1
    python3 - "$@" 3<<<"$options" <<'PY'
import json, os, sys

current = {o["name"]: o["value"] for o in json.load(os.fdopen(3))}

def as_argument(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)

for argument in sys.argv[1:]:
    name, _, wanted = argument.removeprefix("-D").partition("=")
    if name not in current or as_argument(current[name]) != wanted:
        print(argument)
PY
}

# corio_configure BUILD_DIR [-Dname=value...]: makes BUILD_DIR a configured build directory of
# this source tree with at least the given options (only the -Dname=value form is understood).
# Options not given keep whatever value the directory already had.
corio_configure() {
    local build_dir=$1
    shift
    local changed
    if [[ ! -f $build_dir/meson-private/coredata.dat ]]; then
        meson setup "$@" "$build_dir" "$corio_source_dir"
        return
    fi
    if ! changed=$(corio_changed_options "$build_dir" "$@"); then
        echo "corio: $build_dir cannot be read by this meson; reconfiguring it" >&2
        meson setup --reconfigure "$@" "$build_dir" "$corio_source_dir" ||
            meson setup --wipe "$@" "$build_dir" "$corio_source_dir"
        return
    fi
    [[ -z $changed ]] && return 0
    local -a arguments
    mapfile -t arguments <<<"$changed"
    echo "corio: $build_dir: setting ${arguments[*]}" >&2
    meson configure "$build_dir" "${arguments[@]}" && return 0
    # meson configure checks values against the options the directory was made with: an option
    # whose type has changed since (tests and examples were booleans) needs a reconfigure.
    echo "corio: $build_dir: reconfiguring" >&2
    meson setup --reconfigure "$@" "$build_dir" "$corio_source_dir"
}

# shellcheck shell=bash
# Debian packages corio builds with, checked and installed for examples/quickstart.sh and
# tests/run.sh (both source this file; it defines functions only and changes no shell options).
#
# Installing needs root: as root the missing packages are installed with apt-get, refreshing the
# package lists at most once per run, and only when apt does not know a package or the install
# failed with the lists as they were; otherwise the one sudo command that would install them is
# printed and the caller stops. On a system without dpkg the check is skipped and meson reports
# whatever is missing.

# Compiler and build tools, then the libraries meson.build asks for. cmake is here because meson
# finds doctest through doctest's CMake package config (Debian ships no .pc file for it).
corio_required_packages=(
    g++ meson ninja-build pkg-config cmake
    libfmt-dev liburing-dev libboost-context-dev doctest-dev
)

# Optional, for the test suite only: without them the tests that need them report SKIP (or skip
# that part, saying so). Asio is the benchmarks' baseline; spin model-checks the notify protocol
# (tests/model/check.sh); apache2-utils' ab drives the http_server example with HTTP/1.0
# keep-alive (examples/checks/check_http.py).
# shellcheck disable=SC2034 # used by tests/run.sh
corio_optional_packages=(libasio-dev spin apache2-utils)

corio_apt_lists_refreshed=false

# corio_missing_packages PACKAGE...: prints, one a line, each PACKAGE that dpkg does not list as
# installed ("ii"). Removed-but-configured ("rc") packages count as missing.
corio_missing_packages() {
    local package status
    for package in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null) || status=
        [[ $status == ii* ]] || printf '%s\n' "$package"
    done
}

corio_refresh_apt_lists() {
    [[ $corio_apt_lists_refreshed == true ]] && return 0
    corio_apt_lists_refreshed=true
    DEBIAN_FRONTEND=noninteractive apt-get update
}

# corio_apt_install PACKAGE...: root only. Lists are refreshed first when apt does not know a
# package (a fresh container has none), or after a failed install, since stale lists name
# versions the mirror no longer has. The lock timeout waits out a concurrent apt or dpkg run.
corio_apt_install() {
    local -a install=(apt-get install -y --no-install-recommends
        -o DPkg::Lock::Timeout=300 "$@")
    if ! apt-cache show --no-all-versions "$@" >/dev/null 2>&1; then
        corio_refresh_apt_lists || return 1
    fi
    DEBIAN_FRONTEND=noninteractive "${install[@]}" && return 0
    [[ $corio_apt_lists_refreshed == true ]] && return 1
    corio_refresh_apt_lists && DEBIAN_FRONTEND=noninteractive "${install[@]}"
}

# corio_install_packages [EXTRA_PACKAGE...]: makes sure corio_required_packages and the extra
# packages are installed. Returns 0 when they all are (or cannot be checked), 1 when installing
# failed or needs root; in the latter case the sudo command line is printed on stderr.
corio_install_packages() {
    local -a missing
    if ! command -v dpkg-query >/dev/null; then
        echo "corio: no dpkg-query; not checking for: ${corio_required_packages[*]} $*" >&2
        return 0
    fi
    mapfile -t missing < <(corio_missing_packages "${corio_required_packages[@]}" "$@")
    ((${#missing[@]} == 0)) && return 0

    if ((EUID != 0)); then
        echo "corio: missing Debian packages; install them with:" >&2
        echo "sudo apt-get install --no-install-recommends ${missing[*]}" >&2
        return 1
    fi
    echo "corio: installing ${missing[*]}" >&2
    if ! corio_apt_install "${missing[@]}"; then
        echo "corio: apt-get could not install: ${missing[*]}" >&2
        return 1
    fi
}

# corio_install_optional_packages PACKAGE...: best effort, never fails. As root each missing
# package is installed on its own, so one unavailable package does not block the others;
# otherwise the missing ones are only named.
corio_install_optional_packages() {
    local -a missing
    local package
    command -v dpkg-query >/dev/null || return 0
    mapfile -t missing < <(corio_missing_packages "$@")
    ((${#missing[@]} == 0)) && return 0

    if ((EUID != 0)); then
        echo "corio: optional packages not installed (not root): ${missing[*]}" >&2
        return 0
    fi
    for package in "${missing[@]}"; do
        corio_apt_install "$package" ||
            echo "corio: optional package $package could not be installed; continuing" >&2
    done
    return 0
}

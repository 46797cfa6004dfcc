#!/usr/bin/env bash
# Quick start: installs the Debian packages corio needs (when run as root; otherwise prints the
# sudo command and stops), builds the tree in build/ at the top of the repository and runs the
# showcase example, exiting with its status. Arguments are passed on to the example.
#
# Safe to run again and from any directory: installed packages are not touched, an existing
# build/ keeps its options (only examples=true is enforced) and ninja rebuilds only what changed.
# shellcheck source-path=SCRIPTDIR/..
set -euo pipefail

top=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/support/packages.sh
source "$top/tests/support/packages.sh"
# shellcheck source=tests/support/build_dir.sh
source "$top/tests/support/build_dir.sh"

corio_install_packages || exit 1
corio_configure "$top/build" -Dexamples=true
meson compile -C "$top/build"

showcase=$top/build/examples/showcase
if [[ ! -x $showcase ]]; then
    echo "corio: $showcase was not built; is it listed in examples/meson.build?" >&2
    exit 1
fi
exec "$showcase" "$@"

#!/usr/bin/env python3
"""Checks that corio's layers depend one way: coro/ -> runtime/ -> fdmon/ (DESIGN.md section 1).

  check_layers.py ROOT

Reads every C++ file under fdmon/, runtime/ and coro/ and fails, naming the file and the line,
when one includes a header of a layer above its own or an internal header of another layer:
  - fdmon/ includes only its own headers ("fdmon/..." and <corio/...> of fdmon/include/);
  - runtime/ includes its own, fdmon's public headers and fdmon's interface to the loop
    ("fdmon/monitor.hpp", "fdmon/select.hpp"; nothing under fdmon/detail/), never coro's;
  - coro/ includes its own and the public headers of runtime/ and fdmon/, no internals;
  - <liburing.h> only in fdmon/io_uring.cpp and coro/detail/io_uring.hpp.
"""
import pathlib
import re
import sys

LAYERS = ["fdmon", "runtime", "coro"]  # bottom to top
# The only files that may include liburing: the backend and the io_uring awaitables' helpers.
LIBURING_USERS = {"fdmon/io_uring.cpp", "coro/detail/io_uring.hpp"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def public_owner(root, name):
    """The layer whose include/ holds <name> (config.hpp is generated into fdmon's), or None."""
    if name == "corio/config.hpp":
        return "fdmon"
    for layer in LAYERS:
        if (root / layer / "include" / name).is_file():
            return layer
    return None


def problems(root, layer, path):
    rank = LAYERS.index(layer)
    relative = path.relative_to(root).as_posix()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        m = INCLUDE.match(line)
        if not m:
            continue
        kind, name = m.groups()
        if kind == '"':
            owner = name.split("/", 1)[0]
            if owner == layer:
                continue
            if owner not in LAYERS or LAYERS.index(owner) > rank:
                yield number, f'"{name}" belongs to {owner}/, not below {layer}/'
            elif layer == "coro" or "/detail/" in name:
                yield number, f'"{name}" is internal to {owner}/'
        elif name == "liburing.h" and relative not in LIBURING_USERS:
            yield number, "<liburing.h> outside " + " and ".join(sorted(LIBURING_USERS))
        elif name.startswith("corio/"):
            owner = public_owner(root, name)
            if owner is None:
                yield number, f"<{name}> is no public header"
            elif LAYERS.index(owner) > rank:
                yield number, f"<{name}> belongs to {owner}/, a layer above {layer}/"


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = pathlib.Path(argv[1]).resolve()
    failed = False
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*")):
            if path.suffix not in (".cpp", ".hpp", ".in") or not path.is_file():
                continue
            for number, why in problems(root, layer, path):
                print(f"FAIL {path.relative_to(root)}:{number}: {why}")
                failed = True
    if not failed:
        print("ok   fdmon/ <- runtime/ <- coro/: every include points down or stays in its layer")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

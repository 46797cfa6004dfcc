#!/usr/bin/env python3
"""Smoke test of the showcase example, on the backend CORIO_BACKEND names.

Usage: check_showcase.py BACKEND_PROBE SHOWCASE. Runs it (as is, and with --backend naming the
backend) and checks its output: the backend named in the first line, the bottom half's three
runs, three messages through the pipe, the bottom half scheduled by another thread, the stats
line; then --help, a bad flag and a bad backend.
"""
import re
import sys

import common
from common import BACKEND, expect


def check_run(showcase: str, flags: list) -> None:
    p = common.run([showcase, *flags])
    print(p.stdout, end="")
    expect(p.returncode == 0, f"{flags}: exit {p.returncode}: {p.stderr!r}")
    lines = p.stdout.splitlines()
    first = re.fullmatch(r"corio showcase: context 'showcase' on the (\w+) backend", lines[0])
    expect(first is not None and BACKEND in ("auto", first[1]), f"first line: {lines[0]!r}")
    for wanted in ("  bottom half: countdown 3", "  bottom half: countdown 2",
                   "  bottom half: countdown 1",
                   "  bottom half: scheduled by another thread, ran on the loop's thread"):
        expect(wanted in lines, f"{flags}: no {wanted!r}")
    reads = [line for line in lines if line.startswith("  fd handler: read")]
    expect(len(reads) >= 1 and "".join(reads).count("msg") == 3, f"{flags}: pipe: {reads}")
    expect(lines[-1].startswith("done: "), f"{flags}: last line {lines[-1]!r}")


def main() -> int:
    common.probe(sys.argv[1])
    showcase = sys.argv[2]
    try:
        check_run(showcase, [])
        check_run(showcase, ["--backend", BACKEND])
        common.check_command_line(showcase, [["--bogus"], ["--backend"], ["extra"]])
    except common.Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

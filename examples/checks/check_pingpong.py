#!/usr/bin/env python3
"""Smoke test of the pingpong example: it runs for a second and reports positive rates.

Usage: check_pingpong.py BACKEND_PROBE PINGPONG. Runs it for 1 s with adaptive polling (the default) and with
polling off, on the backend CORIO_BACKEND names; checks the header line, one rate line per
second with positive hop and round-trip rates (two hops per round trip), and the summary; then
--help, bad flags (exit 2) and a bad backend (exit 1).
"""
import os
import re
import subprocess
import sys

import common

TIMEOUT = 60  # seconds, per run (sanitizer builds are slow)


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def check_run(pingpong: str, args: list, poll_max_ns: int) -> int:
    done = subprocess.run([pingpong, "--duration", "1"] + args, capture_output=True, text=True,
                          timeout=TIMEOUT)
    print(done.stdout, end="")
    if done.returncode != 0 or done.stderr:
        return fail(f"{args}: exit status {done.returncode}, stderr {done.stderr!r}")
    lines = done.stdout.splitlines()
    if len(lines) != 3:
        return fail(f"{args}: expected 3 lines, got {lines}")
    header = re.fullmatch(r"pingpong: (\w+) backend, poll max (\d+) ns, 1 s", lines[0])
    backend = os.environ.get("CORIO_BACKEND", "auto")
    if not header or int(header[2]) != poll_max_ns or backend not in ("auto", header[1]):
        return fail(f"{args}: unexpected header {lines[0]!r}")
    rates = re.fullmatch(r"1 s: (\d+) hops/s, (\d+) round trips/s", lines[1])
    if not rates or int(rates[1]) <= 0 or abs(int(rates[1]) - 2 * int(rates[2])) > 1:
        return fail(f"{args}: unexpected rates {lines[1]!r}")
    summary = re.fullmatch(r"(\d+) hops in [\d.]+ s: (\d+) hops/s on average", lines[2])
    if not summary or int(summary[1]) <= 0 or int(summary[1]) % 2 or int(summary[2]) <= 0:
        return fail(f"{args}: unexpected summary {lines[2]!r}")
    return 0


def main() -> int:
    common.probe(sys.argv[1])
    pingpong = sys.argv[2]
    if check_run(pingpong, [], 32768) or check_run(pingpong, ["--poll-max-ns", "0"], 0):
        return 1
    try:
        common.check_command_line(pingpong, [["--bogus"], ["--duration", "0"], ["--duration", "x"],
                                             ["--duration"], ["--poll-max-ns", "-1"]])
    except common.Failure as e:
        return fail(f"the command line: {e}")
    print("the command line: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

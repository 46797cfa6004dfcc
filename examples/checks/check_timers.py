#!/usr/bin/env python3
"""Smoke test of the timers example: ticks on schedule, no early wake-up, a clean stop.

Usage: check_timers.py BACKEND_PROBE TIMERS. Runs it for about a second (2000 sleepers up to 500 ms, 10
ticks of 100 ms) and checks every tick line (numbered in order, due at exactly k x 100 ms, run
no earlier than due), that all sleepers woke and none early, and the tick count. Then starts a
long run twice, sends SIGINT and SIGTERM (by pid) after the first tick, and checks the clean
stop: the signal named, every sleeper either awake or cancelled, exit status 0. Last, --help,
bad flags (exit 2) and a bad backend (exit 1).
"""
import os
import re
import signal
import subprocess
import sys

import common

TIMEOUT = 60  # seconds, per wait (sanitizer builds are slow)
SLEEPERS = 2000
TICK = re.compile(r"tick (\d+)/(\d+): due \+([\d.]+) ms, ran \+([\d.]+) ms \(([\d.]+) ms late\); "
                  r"(\d+) sleepers awake")
SUMMARY = re.compile(r"sleepers: (\d+) woke, (\d+) early, (\d+) cancelled; latest [\d.]+ ms "
                     r"after its deadline")


def check_header(line: str) -> None:
    match = re.fullmatch(r"timers: (\d+) sleepers up to \d+ ms, \d+ ticks every \d+ ms, "
                         r"(\w+) backend", line)
    backend = os.environ.get("CORIO_BACKEND", "auto")
    if not match or int(match[1]) != SLEEPERS or backend not in ("auto", match[2]):
        raise SystemExit(f"unexpected header {line!r}")


def check_ticks(lines: list, ticks: int) -> None:
    """The tick lines: 1..n in order, due at k x 100 ms, never run before due."""
    for k, line in enumerate(lines, 1):
        match = TICK.fullmatch(line)
        if not match or int(match[1]) != k or int(match[2]) != ticks:
            raise SystemExit(f"unexpected tick line {line!r}")
        due, ran = float(match[3]), float(match[4])
        if due != 100.0 * k or ran < due:
            raise SystemExit(f"tick {k} off schedule: {line!r}")


def full_run(timers: str) -> None:
    done = subprocess.run([timers, "--sleepers", str(SLEEPERS), "--max-sleep-ms", "500",
                           "--period-ms", "100", "--ticks", "10"],
                          capture_output=True, text=True, timeout=TIMEOUT)
    print(done.stdout, end="")
    if done.returncode != 0 or done.stderr:
        raise SystemExit(f"exit status {done.returncode}, stderr {done.stderr!r}")
    lines = done.stdout.splitlines()
    if len(lines) != 13:
        raise SystemExit(f"expected a header, 10 ticks and 2 summary lines: {lines}")
    check_header(lines[0])
    check_ticks(lines[1:11], 10)
    summary = SUMMARY.fullmatch(lines[11])
    if not summary or summary.group(1, 2, 3) != (str(SLEEPERS), "0", "0"):
        raise SystemExit(f"expected every sleeper awake, none early: {lines[11]!r}")
    if lines[12] != "ticker: 10 of 10 ticks":
        raise SystemExit(f"unexpected tick count: {lines[12]!r}")


def interrupted_run(timers: str, signo: int) -> None:
    proc = subprocess.Popen([timers, "--sleepers", str(SLEEPERS), "--max-sleep-ms", "100000",
                             "--ticks", "1000"], stdout=subprocess.PIPE, text=True)
    try:
        header, first_tick = proc.stdout.readline(), proc.stdout.readline()
        check_header(header.rstrip("\n"))
        check_ticks([first_tick.rstrip("\n")], 1000)
        proc.send_signal(signo)
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()  # by its pid: only after a failure
            proc.wait()
    print(header + first_tick + out, end="")
    lines = out.splitlines()
    name = signal.Signals(signo).name
    if proc.returncode != 0 or len(lines) < 3 or lines[-3] != f"interrupted by {name}":
        raise SystemExit(f"{name}: exit status {proc.returncode}, output {lines}")
    check_ticks([first_tick.rstrip("\n")] + lines[:-3], 1000)
    summary = SUMMARY.fullmatch(lines[-2])
    if (not summary or int(summary[1]) + int(summary[3]) != SLEEPERS or summary[2] != "0"
            or int(summary[3]) == 0):
        raise SystemExit(f"{name}: expected sleepers awake or cancelled, none early: {lines[-2]!r}")
    ticks = re.fullmatch(r"ticker: (\d+) of 1000 ticks", lines[-1])
    if not ticks or int(ticks[1]) != len(lines) - 3 + 1:
        raise SystemExit(f"{name}: the tick count does not match the tick lines: {lines}")


def main() -> int:
    common.probe(sys.argv[1])
    timers = sys.argv[2]
    full_run(timers)
    interrupted_run(timers, signal.SIGINT)
    interrupted_run(timers, signal.SIGTERM)
    try:
        common.check_command_line(timers, [["--bogus"], ["--sleepers", "-1"], ["--period-ms", "0"],
                                           ["--ticks", "x"], ["--ticks"]])
    except common.Failure as e:
        raise SystemExit(f"the command line: {e}")
    print("the command line: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

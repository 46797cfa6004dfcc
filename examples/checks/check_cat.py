#!/usr/bin/env python3
"""Smoke test of the cat example: byte-exact copies, errors as coreutils reports them.

Usage: check_cat.py BACKEND_PROBE CAT. In a temporary directory: an empty file, a small one and a 3 MiB one
are copied in one run (and into a regular file); a missing file and a directory are reported
while the files after them are still copied (exit 1); `-` and no argument read standard input
from a pipe, and a redirected standard input is read at its file position; a reader that closes
the pipe after 10 bytes ends the copy quietly; --help, --backend, bad flags and a bad backend.
"""
import os
import subprocess
import sys
import tempfile

import common

TIMEOUT = 60  # seconds, per run (sanitizer builds are slow)


def run(cat: str, args: list, stdin=None, input_bytes: bytes = None, stdout=subprocess.PIPE):
    return subprocess.run([cat] + args, stdin=stdin, input=input_bytes, stdout=stdout,
                          stderr=subprocess.PIPE, timeout=TIMEOUT)


def expect(what: str, done: subprocess.CompletedProcess, status: int, out: bytes = None,
           err: str = "") -> None:
    problems = []
    if done.returncode != status:
        problems.append(f"exit status {done.returncode}, expected {status}")
    if out is not None and done.stdout != out:
        problems.append(f"{len(done.stdout)} bytes out, expected {len(out)} "
                        f"({'same length, different bytes' if len(out) == len(done.stdout) else 'lengths differ'})")
    if done.stderr.decode() != err:
        problems.append(f"stderr {done.stderr.decode()!r}, expected {err!r}")
    if problems:
        raise SystemExit(f"{what}: " + "; ".join(problems))
    print(f"ok: {what}")


def main() -> int:
    common.probe(sys.argv[1])
    cat = sys.argv[2]
    backend = os.environ.get("CORIO_BACKEND", "auto")
    with tempfile.TemporaryDirectory() as tmp:
        def make(name: str, content: bytes) -> tuple:
            path = os.path.join(tmp, name)
            with open(path, "wb") as f:
                f.write(content)
            return path, content

        empty, empty_bytes = make("empty", b"")
        small, small_bytes = make("small", b"hello, corio\n")
        big, big_bytes = make("big", os.urandom(3 << 20))
        piped = os.urandom(1 << 20)
        missing = os.path.join(tmp, "missing")

        expect("three files", run(cat, [empty, small, big]), 0,
               empty_bytes + small_bytes + big_bytes)
        expect(f"three files, --backend {backend}",
               run(cat, ["--backend", backend, big, small, empty]), 0,
               big_bytes + small_bytes + empty_bytes)
        with open(os.path.join(tmp, "out"), "wb") as out:
            expect("into a regular file", run(cat, [big, big], stdout=out), 0, None)
        with open(os.path.join(tmp, "out"), "rb") as out:
            if out.read() != big_bytes * 2:
                raise SystemExit("into a regular file: the file's contents differ")
        expect("a missing file, then others", run(cat, [small, missing, big]), 1,
               small_bytes + big_bytes, f"cat: {missing}: No such file or directory\n")
        expect("a directory, then a file", run(cat, [tmp, small]), 1, small_bytes,
               f"cat: {tmp}: Is a directory\n")
        expect("`-` between files", run(cat, [small, "-", big], input_bytes=piped), 0,
               small_bytes + piped + big_bytes)
        expect("no argument: standard input", run(cat, [], input_bytes=piped), 0, piped)
        with open(big, "rb") as f:
            f.seek(1000)  # the copy starts at the file position, as with coreutils
            expect("standard input redirected from a file", run(cat, ["-"], stdin=f), 0,
                   big_bytes[1000:])

        # A reader that goes away: cat sees EPIPE and stops quietly, status 0.
        proc = subprocess.Popen([cat, big, big, big, big], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        head = proc.stdout.read(10)
        proc.stdout.close()
        try:
            err = proc.stderr.read().decode()
            status = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()  # by its pid
            proc.wait()
            raise SystemExit("cat did not end after its reader closed the pipe")
        if head != big_bytes[:10] or status != 0 or err:
            raise SystemExit(f"reader closing early: head {head!r}, status {status}, "
                             f"stderr {err!r}")
        print("ok: a reader closing the pipe early")

    try:
        common.check_command_line(cat, [["--bogus"], ["-n"], ["--backend"]])
    except common.Failure as e:
        raise SystemExit(f"the command line: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What every check script shares: the backend probe, and the command-line checks.

probe() runs backend_probe first: where this machine cannot give the backend CORIO_BACKEND names
(a container's seccomp profile refusing io_uring_setup with EPERM, or killing the caller with
SIGSYS), the script exits 77, which meson reports as SKIP, with the reason; a failure after that
is the example's. check_command_line() checks what every example promises: --help exits 0 with
the usage; a bad flag exits 2 with one line naming it; a bad backend (CORIO_BACKEND or --backend)
exits 1 with one line naming it and the accepted ones.
"""
import os
import signal
import subprocess
import sys

TIMEOUT = 60  # seconds, per run (sanitizer builds are slow)
SKIP = 77
BACKEND = os.environ.get("CORIO_BACKEND", "auto")


class Failure(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def probe(backend_probe: str) -> None:
    """Exits 77 (SKIP) with the reason if this machine cannot give the backend."""
    p = subprocess.run([backend_probe], capture_output=True, text=True, timeout=TIMEOUT)
    if p.returncode == 0:
        print(p.stdout.strip())
        return
    if p.returncode == SKIP:
        print(f"SKIP: {p.stdout.strip()}")
        sys.exit(SKIP)
    if p.returncode == -signal.SIGSYS:
        print(f"SKIP: backend {BACKEND}: setting it up was killed by SIGSYS (a seccomp policy)")
        sys.exit(SKIP)
    sys.exit(f"backend_probe: exit {p.returncode}: {p.stdout}{p.stderr}")


def run(args: list, env: dict = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, env=env,
                          stdin=subprocess.DEVNULL)


def check_command_line(program: str, bad_flags: list, args: list = (),
                       backend_flag: bool = True) -> None:
    """--help, each of `bad_flags` (argument lists; the last one is the bad one, named in the
    message), --backend bogus if the program takes --backend, and CORIO_BACKEND=bogus. `args`:
    what the program needs besides (e.g. a URL) to get as far as creating its context."""
    name = os.path.basename(program)
    p = run([program, "--help"])
    expect(p.returncode == 0 and p.stdout.startswith(f"usage: {name}") and not p.stderr,
           f"--help: exit {p.returncode}, {p.stdout!r}, {p.stderr!r}")

    def refused(flags: list, status: int, names: list, env: dict = None) -> None:
        p = run([program, *args, *flags], env)
        lines = p.stderr.splitlines()
        expect(p.returncode == status and not p.stdout and len(lines) == 1
               and lines[0].startswith(f"{name}: ") and all(n in lines[0] for n in names),
               f"{flags or env}: exit {p.returncode} (expected {status}), stdout {p.stdout!r}, "
               f"stderr {p.stderr!r} (expected one line naming {names})")
        print(f"ok: {' '.join(flags) or 'CORIO_BACKEND=bogus'}: exit {status}: {lines[0]}")

    for flags in bad_flags:
        refused(flags, 2, [flags[-1]])
    if backend_flag:
        refused(["--backend", "bogus"], 1, ["bogus", "io_uring", "epoll", "poll"])
    refused([], 1, ["bogus", "io_uring", "epoll", "poll"], dict(os.environ, CORIO_BACKEND="bogus"))

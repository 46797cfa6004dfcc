#!/usr/bin/env python3
"""bench=echo — corio's echo server side by side with hand-written ones, over loopback TCP.

Every server is started on 127.0.0.1 (port 0; the port is read from its first line of output)
and driven in turn by the echo_client example at 1, 16 and 256 connections, one message in
flight per connection, for a fixed time (split into slices interleaved with the other servers'
so that drifting load on a shared machine falls on all alike). Servers:
  corio_io_uring, corio_epoll  examples/echo_server, --backend forced
  liburing                     tests/bench/echo_server_liburing.cpp (raw io_uring)
  epoll                        tests/bench/echo_server_epoll.cpp (raw epoll)
  asio_epoll, asio_io_uring    tests/bench/echo_server_asio.cpp (Asio coroutines), if built

Where the machine has two CPUs or more, the server runs on one and the client on another (CPU
affinity set before exec, so every thread inherits it). On a 2-core machine the client
saturates its CPU first, so round trips/s alone hardly tells the servers apart: the server's
CPU time per round trip (utime+stime from /proc/<pid>/stat over the client's run, divided by
the round trips) is reported as well. Output, per server and connection count:
  bench=echo variant=<server>-<conns> value=<round trips/s> unit=rt/s
  bench=echo_cpu variant=<server>-<conns> value=<server CPU µs per round trip> unit=us/rt
then '#' lines with the ratios corio/raw liburing, corio on epoll/raw epoll and corio/Asio,
each with the target it is held to and whether it is met.

Usage: bench_echo.py BUILD_DIR   (tests/bench/run.sh echo builds and passes build-bench)
Environment (all optional):
  CORIO_BENCH_ECHO_SECONDS      seconds per server and connection count (default 3)
  CORIO_BENCH_ECHO_ROUNDS       slices each measurement is split into, interleaved with the
                                other servers' (default 3)
  CORIO_BENCH_ECHO_CONNECTIONS  comma-separated connection counts (default 1,16,256)
  CORIO_BENCH_ECHO_SIZE         message size in bytes (default 64)
  CORIO_BENCH_ECHO_SERVERS      comma-separated subset of the servers above (default all)
  CORIO_BENCH_ECHO_CLIENT       the client's --backend (default auto: io_uring where the
                                machine has it, whose client sustains about 1.3-3x the round
                                trips/s of the epoll one on 2 cores; the same for every server)
"""

import math
import os
import re
import selectors
import signal
import statistics
import subprocess
import sys
import time

SERVERS = ['corio_io_uring', 'corio_epoll', 'liburing', 'epoll', 'asio_epoll', 'asio_io_uring']
START_TIMEOUT = 10  # seconds for a server to print its address
STOP_TIMEOUT = 10  # seconds for a server to exit after SIGTERM


def fail(what):
    print(f'bench_echo: {what}', file=sys.stderr)
    sys.exit(1)


def note(text):
    print(f'# {text}', flush=True)


def report(bench, variant, value, unit):
    """One measurement line, formatted like bench.hpp's report(): three significant digits."""
    magnitude = math.floor(math.log10(value)) if value > 0 else 0
    decimals = min(max(2 - magnitude, 0), 6)
    print(f'bench={bench} variant={variant} value={value:.{decimals}f} unit={unit}', flush=True)


def env_list(name, default):
    return [item for item in os.environ.get(name, default).split(',') if item]


def server_command(build, name):
    """The command line of server `name` (--port 0 appended by the caller), or None if the
    build has no such program (Asio missing)."""
    bench = os.path.join(build, 'tests', 'bench')
    if name.startswith('corio_'):
        return [os.path.join(bench, 'echo_server'), '--threads', '1',
                '--backend', name.removeprefix('corio_')]
    path = os.path.join(bench, f'echo_server_{name}')
    return [path] if os.path.exists(path) else None


def cpu_seconds(pid):
    """utime + stime of process `pid`, every thread included, in seconds."""
    with open(f'/proc/{pid}/stat') as f:
        stat = f.read()
    fields = stat[stat.rindex(')') + 2:].split()  # from field 3 (state) on
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def pinned(cpu):
    """A preexec_fn that pins the child (and the threads it will start) to `cpu`."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


class Server:
    """A running server: started, its address read, stopped with SIGTERM (must exit 0)."""

    def __init__(self, name, command, cpu):
        self.name = name
        self.proc = subprocess.Popen(command + ['--port', '0'], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, preexec_fn=pinned(cpu))
        deadline = time.monotonic() + START_TIMEOUT
        self.first_line = self._read_line(deadline)
        match = re.search(r'127\.0\.0\.1:(\d+)', self.first_line)
        self.port = int(match.group(1)) if match else None

    def _read_line(self, deadline):
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(max(0.0, deadline - time.monotonic())):
                return ''
        return self.proc.stdout.readline()

    def failure(self):
        """Why the server did not start (it has exited), from its standard error."""
        try:
            _, err = self.proc.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            return 'printed no address in time'
        lines = err.strip().splitlines()
        return lines[-1] if lines else f'exit status {self.proc.returncode}'

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            fail(f'{self.name}: did not exit within {STOP_TIMEOUT} s of SIGTERM')
        if self.proc.returncode != 0:
            fail(f'{self.name}: exit status {self.proc.returncode} after SIGTERM: {err.strip()}')


def run_client(build, port, connections, size, seconds, backend, cpu):
    """Runs echo_client once; returns its final line's fields as a dict."""
    client = os.path.join(build, 'tests', 'bench', 'echo_client')
    command = [client, '--host', '127.0.0.1', '--port', str(port),
               '--connections', str(connections), '--size', str(size),
               '--duration', seconds, '--threads', '1', '--backend', backend]
    try:
        done = subprocess.run(command, capture_output=True, text=True, preexec_fn=pinned(cpu),
                              timeout=float(seconds) + 60)
    except subprocess.TimeoutExpired:
        fail(f'echo_client did not finish: {" ".join(command)}')
    lines = done.stdout.strip().splitlines()
    fields = dict(re.findall(r'(\w+)=(\S+)', lines[-1])) if lines else {}
    if done.returncode != 0 or 'roundtrips' not in fields:
        fail(f'echo_client failed (exit {done.returncode}): {" ".join(command)}\n'
             f'{done.stdout}{done.stderr}')
    if int(fields.get('errors', '1')) != 0:
        fail(f'echo_client reported errors: {lines[-1]}')
    return fields


def main():
    if len(sys.argv) != 2:
        print(__doc__.split('\n\n')[-1], file=sys.stderr)
        sys.exit(2)
    build = sys.argv[1]
    seconds = os.environ.get('CORIO_BENCH_ECHO_SECONDS', '3')
    counts = [int(c) for c in env_list('CORIO_BENCH_ECHO_CONNECTIONS', '1,16,256')]
    size = int(os.environ.get('CORIO_BENCH_ECHO_SIZE', '64'))
    servers = env_list('CORIO_BENCH_ECHO_SERVERS', ','.join(SERVERS))
    rounds = int(os.environ.get('CORIO_BENCH_ECHO_ROUNDS', '3'))
    client_backend = os.environ.get('CORIO_BENCH_ECHO_CLIENT', 'auto')
    for name in servers:
        if name not in SERVERS:
            fail(f"unknown server '{name}' (known: {', '.join(SERVERS)})")

    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    with open('/proc/loadavg') as f:
        load = ' '.join(f.read().split()[:3])
    note(f'echo: {seconds} s per server and connection count, in {rounds} interleaved slices; '
         f'{size}-byte messages, 1 in flight per connection; '
         f'client: echo_client --threads 1 --backend {client_backend}; ' +
         (f'server on CPU {server_cpu}, client on CPU {client_cpu}'
          if server_cpu is not None else 'one CPU: not pinned') +
         f'; load average before: {load}')

    running = {}  # name -> Server
    for name in servers:
        command = server_command(build, name)
        if command is None:
            note(f'{name}: skipped: not built (Asio headers not found: install libasio-dev)')
            continue
        server = Server(name, command, server_cpu)
        if server.port is None:
            note(f'{name}: skipped: {server.failure()}')
            continue
        # corio falls back to another backend rather than failing where io_uring is refused;
        # its first line names the one it runs on.
        wanted = name.removeprefix('corio_')
        if name.startswith('corio_') and wanted not in server.first_line:
            server.stop()
            note(f'{name}: skipped: the server runs on another backend: {server.first_line.strip()}')
            continue
        note(f'{name}: {server.first_line.strip()}')
        running[name] = server

    # Each measurement is split into `rounds` slices, interleaved with every other server's, so
    # that load from elsewhere on a shared machine, which drifts over a minute, falls on all
    # servers alike. An idle server waits in the kernel and costs nothing meanwhile.
    slice_seconds = f'{float(seconds) / rounds:g}'
    slices = {}  # (server, connections) -> [(round trips, seconds, server CPU s, client fields)]
    for _ in range(rounds):
        for connections in counts:
            for name, server in running.items():
                before = cpu_seconds(server.proc.pid)
                fields = run_client(build, server.port, connections, size, slice_seconds,
                                    client_backend, client_cpu)
                used = cpu_seconds(server.proc.pid) - before
                slices.setdefault((name, connections), []).append(
                    (int(fields['roundtrips']), float(fields['seconds']), used, fields))
                if len(slices) == 1 and len(slices[name, connections]) == 1:
                    note(f'echo_client runs on {fields.get("backend")}')
    for server in running.values():
        server.stop()

    rate = {}  # (server, connections) -> round trips/s
    cpu = {}  # (server, connections) -> server CPU µs per round trip
    for name in running:
        for connections in counts:
            runs = slices[name, connections]
            roundtrips = sum(r[0] for r in runs)
            if roundtrips == 0:
                fail(f'{name}-{connections}: no round trip completed')
            used = sum(r[2] for r in runs)
            variant = f'{name}-{connections}'
            rate[name, connections] = roundtrips / sum(r[1] for r in runs)
            cpu[name, connections] = used / roundtrips * 1e6
            report('echo', variant, rate[name, connections], 'rt/s')
            report('echo_cpu', variant, cpu[name, connections], 'us/rt')

            def latency(key):
                return statistics.median(float(r[3][key]) for r in runs)

            note(f'{variant}: latency p50={latency("p50_us"):.0f} p99={latency("p99_us"):.0f} '
                 f'p999={latency("p999_us"):.0f} us (median of {rounds} slices), '
                 f'server CPU {used:.2f} s')

    with open('/proc/loadavg') as f:
        note(f'load average after: {" ".join(f.read().split()[:3])}')
    summarize(counts, rate, cpu)


def summarize(counts, rate, cpu):
    """'#' lines: the ratios the issue sets targets for, per connection count."""

    def ratios(label, a, b, target, met):
        measured = [n for n in counts if (a, n) in rate and (b, n) in rate]
        if not measured:
            note(f'{label}: not measured')
        for n in measured:
            r = rate[a, n] / rate[b, n]
            c = cpu[a, n] / cpu[b, n]
            verdict = 'met' if met(r, c, n) else 'MISSED'
            note(f'{label}-{n}: rt/s x{r:.3f}, CPU/rt x{c:.3f} (target: {target}: {verdict})')

    def best_raw(n):
        return max((rate[s, n] for s in ('liburing', 'epoll') if (s, n) in rate), default=None)

    note('ratios (corio / baseline; rt/s above 1 and CPU/rt below 1 favour corio):')
    ratios('corio_io_uring/liburing', 'corio_io_uring', 'liburing',
           'CPU/rt <= 1.00x raw liburing, rt/s >= 0.95x the best raw server',
           lambda r, c, n: c <= 1.0 and rate['corio_io_uring', n] >= 0.95 * best_raw(n))
    ratios('corio_epoll/epoll', 'corio_epoll', 'epoll', 'within 5% of raw epoll on both',
           lambda r, c, n: r >= 0.95 and c <= 1.05)
    for backend in ('epoll', 'io_uring'):
        ratios(f'corio_{backend}/asio_{backend}', f'corio_{backend}', f'asio_{backend}',
               'rt/s >= 1.3x Asio', lambda r, c, n: r >= 1.3)


if __name__ == '__main__':
    main()
